//! Minimal reader and writer for NumPy `.npy` files (format versions 1–3).
//!
//! Only what the tools exchange with Python: C-order arrays of little-endian `f4`, `f8`,
//! `i8`, `i4`, `i1` and `u1`. Anything else (big-endian, Fortran order, structured dtypes,
//! pickled objects) is rejected with the reason.

use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context, Result};

/// An n-dimensional array read from (or written to) a `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: ArrayData,
}

/// The elements of an [`Array`], in C (row-major) order.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    I8(Vec<i8>),
    U8(Vec<u8>),
}

impl ArrayData {
    pub fn len(&self) -> usize {
        match self {
            ArrayData::F32(v) => v.len(),
            ArrayData::F64(v) => v.len(),
            ArrayData::I64(v) => v.len(),
            ArrayData::I32(v) => v.len(),
            ArrayData::I8(v) => v.len(),
            ArrayData::U8(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The NumPy `descr` of this element type.
    pub fn descr(&self) -> &'static str {
        match self {
            ArrayData::F32(_) => "<f4",
            ArrayData::F64(_) => "<f8",
            ArrayData::I64(_) => "<i8",
            ArrayData::I32(_) => "<i4",
            ArrayData::I8(_) => "|i1",
            ArrayData::U8(_) => "|u1",
        }
    }
}

impl Array {
    /// An `f32` array; `data.len()` must equal the product of `shape`.
    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Array {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Array {
            shape,
            data: ArrayData::F32(data),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Length of the first axis (the number of samples in a batch); 1 for a 0-d array.
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Elements per entry of the first axis.
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The elements converted to `f32` (integers exactly where they fit, `f64` rounded).
    pub fn to_f32(&self) -> Vec<f32> {
        match &self.data {
            ArrayData::F32(v) => v.clone(),
            ArrayData::F64(v) => v.iter().map(|&x| x as f32).collect(),
            ArrayData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            ArrayData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            ArrayData::I8(v) => v.iter().map(|&x| x as f32).collect(),
            ArrayData::U8(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The elements as `i64`; fails for floating-point arrays.
    pub fn to_i64(&self) -> Result<Vec<i64>> {
        Ok(match &self.data {
            ArrayData::I64(v) => v.clone(),
            ArrayData::I32(v) => v.iter().map(|&x| x as i64).collect(),
            ArrayData::I8(v) => v.iter().map(|&x| x as i64).collect(),
            ArrayData::U8(v) => v.iter().map(|&x| x as i64).collect(),
            ArrayData::F32(_) | ArrayData::F64(_) => {
                bail!("expected an integer array, found {}", self.data.descr())
            }
        })
    }

    /// The `.npy` (version 1.0) encoding of this array.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = header(self.data.descr(), &self.shape);
        match &self.data {
            ArrayData::F32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            ArrayData::F64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            ArrayData::I64(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            ArrayData::I32(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            ArrayData::I8(v) => out.extend(v.iter().map(|&x| x as u8)),
            ArrayData::U8(v) => out.extend_from_slice(v),
        }
        out
    }
}

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Reads a `.npy` file.
pub fn read(path: impl AsRef<Path>) -> Result<Array> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&bytes).with_context(|| format!("parsing {} as .npy", path.display()))
}

/// Parses the bytes of a `.npy` file.
pub fn parse(bytes: &[u8]) -> Result<Array> {
    ensure!(
        bytes.len() >= 10 && &bytes[..6] == MAGIC,
        "not a .npy file (bad magic)"
    );
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 => {
            ensure!(bytes.len() >= 12, "truncated .npy header");
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => bail!("unsupported .npy format version {v}"),
    };
    let end = start.checked_add(header_len).filter(|&e| e <= bytes.len());
    let end = end.ok_or_else(|| anyhow!("truncated .npy header"))?;
    let header = std::str::from_utf8(&bytes[start..end]).context("non-UTF-8 .npy header")?;
    let descr = dict_value(header, "descr")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = dict_value(header, "fortran_order")?;
    ensure!(fortran == "False", "Fortran-order arrays are not supported");
    let shape_text = dict_value(header, "shape")?;
    let shape = shape_text
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .with_context(|| format!("bad dimension `{s}` in shape"))
        })
        .collect::<Result<Vec<_>>>()?;
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| anyhow!("shape {shape:?} overflows"))?;
    let body = &bytes[end..];
    let width = match descr {
        "<f4" => 4,
        "<f8" => 8,
        "<i8" => 8,
        "<i4" => 4,
        "|i1" | "<i1" | "i1" => 1,
        "|u1" | "<u1" | "u1" | "|b1" => 1,
        other => bail!("unsupported dtype `{other}` (supported: <f4 <f8 <i8 <i4 |i1 |u1)"),
    };
    ensure!(
        body.len() == n * width,
        "data holds {} bytes; shape {shape:?} of {descr} needs {}",
        body.len(),
        n * width
    );
    let chunks = |w: usize| body.chunks_exact(w);
    let data = match descr {
        "<f4" => ArrayData::F32(
            chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        "<f8" => ArrayData::F64(
            chunks(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        "<i8" => ArrayData::I64(
            chunks(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        "<i4" => ArrayData::I32(
            chunks(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        "|i1" | "<i1" | "i1" => ArrayData::I8(body.iter().map(|&b| b as i8).collect()),
        _ => ArrayData::U8(body.to_vec()),
    };
    Ok(Array { shape, data })
}

/// The text after `'key':` in a header dict, up to the next top-level comma.
fn dict_value<'a>(header: &'a str, key: &str) -> Result<&'a str> {
    let pos = ["'", "\""]
        .iter()
        .find_map(|q| header.find(&format!("{q}{key}{q}")))
        .ok_or_else(|| anyhow!("header has no `{key}`: {header}"))?;
    let rest = &header[pos + key.len() + 2..];
    let rest = rest
        .trim_start()
        .strip_prefix(':')
        .ok_or_else(|| anyhow!("malformed header: {header}"))?;
    let rest = rest.trim_start();
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Ok(rest[..i].trim()),
            _ => {}
        }
    }
    Ok(rest.trim())
}

/// A version 1.0 header, padded with spaces so the data starts at a multiple of 64 bytes.
fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_text = match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    let unpadded = MAGIC.len() + 4 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

fn write(path: &Path, array: &Array) -> Result<()> {
    let n: usize = array.shape.iter().product();
    ensure!(
        n == array.len(),
        "shape {:?} holds {n} elements, data has {}",
        array.shape,
        array.len()
    );
    std::fs::write(path, array.to_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// Writes an `f32` array (`<f4`).
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<()> {
    write(
        path.as_ref(),
        &Array {
            shape: shape.to_vec(),
            data: ArrayData::F32(data.to_vec()),
        },
    )
}

/// Writes an `i8` array (`|i1`).
pub fn write_i8(path: impl AsRef<Path>, shape: &[usize], data: &[i8]) -> Result<()> {
    write(
        path.as_ref(),
        &Array {
            shape: shape.to_vec(),
            data: ArrayData::I8(data.to_vec()),
        },
    )
}

/// Writes an `i32` array (`<i4`).
pub fn write_i32(path: impl AsRef<Path>, shape: &[usize], data: &[i32]) -> Result<()> {
    write(
        path.as_ref(),
        &Array {
            shape: shape.to_vec(),
            data: ArrayData::I32(data.to_vec()),
        },
    )
}

/// Writes an `i64` array (`<i8`).
pub fn write_i64(path: impl AsRef<Path>, shape: &[usize], data: &[i64]) -> Result<()> {
    write(
        path.as_ref(),
        &Array {
            shape: shape.to_vec(),
            data: ArrayData::I64(data.to_vec()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_dtype() {
        let arrays = [
            Array {
                shape: vec![2, 3],
                data: ArrayData::F32(vec![0.5, -1.0, 2.0, 3.25, 1e-7, 9.0]),
            },
            Array {
                shape: vec![3],
                data: ArrayData::I64(vec![-1, 0, 1 << 40]),
            },
            Array {
                shape: vec![1, 2, 2],
                data: ArrayData::I8(vec![-128, 0, 5, 127]),
            },
            Array {
                shape: vec![2],
                data: ArrayData::I32(vec![i32::MIN, 7]),
            },
            Array {
                shape: vec![],
                data: ArrayData::F64(vec![1.5]),
            },
            Array {
                shape: vec![0, 4],
                data: ArrayData::U8(vec![]),
            },
        ];
        for a in arrays {
            let bytes = a.to_bytes();
            let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + header_len) % 64, 0);
            assert_eq!(parse(&bytes).unwrap(), a);
        }
    }

    #[test]
    fn reads_numpy_written_header() {
        // Header exactly as numpy 2 writes np.save(f, np.zeros((2, 1), np.float32)).
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }";
        let mut h = dict.to_string();
        h.push_str(&" ".repeat(118 - dict.len() - 1));
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
        bytes.extend_from_slice(h.as_bytes());
        bytes.extend_from_slice(&[0u8; 8]);
        let a = parse(&bytes).unwrap();
        assert_eq!(a.shape, vec![2, 1]);
        assert_eq!(a.to_f32(), vec![0.0, 0.0]);
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        let mut bytes = Array {
            shape: vec![1],
            data: ArrayData::F32(vec![1.0]),
        }
        .to_bytes();
        let at = bytes.windows(3).position(|w| w == b"<f4").unwrap();
        bytes[at] = b'>';
        assert!(parse(&bytes).unwrap_err().to_string().contains(">f4"));
        assert!(parse(b"hello world").is_err());
    }
}
