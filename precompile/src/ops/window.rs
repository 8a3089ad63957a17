//! What convolutions and pools share: the sliding window, its codec, and the output size it
//! gives a `[C, H, W]` map.

use crate::codec::Reader;
use crate::error::{Code, ModelError};

/// Kernel, stride and padding of a convolution or pooling window (height first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel: [u16; 2],
    pub stride: [u16; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [u16; 4],
}

impl Window {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Window, ModelError> {
        let mut v = [0u16; 8];
        for x in &mut v {
            *x = r.u16()?;
        }
        Ok(Window {
            kernel: [v[0], v[1]],
            stride: [v[2], v[3]],
            pads: [v[4], v[5], v[6], v[7]],
        })
    }

    pub(crate) fn write(&self, w: &mut Vec<u8>) {
        for v in self.kernel.iter().chain(&self.stride).chain(&self.pads) {
            w.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// Output `[out_h, out_w]` over `[h, w]`, checking the height axis then the width axis.
    /// Every pad must be smaller than the kernel on its axis so each window overlaps real
    /// data.
    pub(crate) fn output(&self, node: usize, h: u32, w: u32) -> Result<[u32; 2], ModelError> {
        let mut out = [0u32; 2];
        for (axis, size) in [h, w].into_iter().enumerate() {
            let (k, s) = (self.kernel[axis] as u32, self.stride[axis] as u32);
            let (p0, p1) = (self.pads[axis] as u32, self.pads[axis + 2] as u32);
            if k == 0 || s == 0 {
                return Err(ModelError::at(
                    Code::ZeroKernelOrStride,
                    node,
                    format!("kernel {k} and stride {s} must be at least 1"),
                ));
            }
            if p0 >= k || p1 >= k {
                return Err(ModelError::at(
                    Code::PadTooLarge,
                    node,
                    format!("padding {p0}/{p1} must be smaller than kernel {k}"),
                ));
            }
            let padded = size + p0 + p1;
            if padded < k {
                return Err(ModelError::at(
                    Code::KernelTooLarge,
                    node,
                    format!("kernel {k} is larger than padded input {padded}"),
                ));
            }
            out[axis] = (padded - k) / s + 1;
        }
        Ok(out)
    }
}

/// `[C, H, W]` of a feature map (`[C, L]` is `[C, 1, L]`).
pub fn chw(shape: &[u32]) -> [u64; 3] {
    match *shape {
        [c, l] => [c as u64, 1, l as u64],
        [c, h, w] => [c as u64, h as u64, w as u64],
        _ => [crate::validate::numel(shape), 1, 1],
    }
}

/// [`chw`] as `usize`, for kernels (tensors of valid models fit in memory).
pub fn chw_usize(shape: &[u32]) -> [usize; 3] {
    chw(shape).map(|d| d as usize)
}
