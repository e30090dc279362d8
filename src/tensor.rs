//! A minimal dense, row-major tensor shared by every stage.
//!
//! The stages need only shapes, flat data and a few index helpers (broadcasting, strides), so a
//! small type of our own keeps the artifacts independent of tract's internal representation.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tensor<T> {
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

impl<T: Clone> Tensor<T> {
    /// A tensor from a shape and flat row-major data; the lengths must agree.
    pub fn new(shape: Vec<usize>, data: Vec<T>) -> Self {
        assert_eq!(
            numel(&shape),
            data.len(),
            "tensor data does not fit shape {shape:?}"
        );
        Tensor { shape, data }
    }

    pub fn filled(shape: Vec<usize>, value: T) -> Self {
        let n = numel(&shape);
        Tensor {
            shape,
            data: vec![value; n],
        }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn map<U, F: FnMut(&T) -> U>(&self, f: F) -> Tensor<U> {
        Tensor {
            shape: self.shape.clone(),
            data: self.data.iter().map(f).collect(),
        }
    }

    pub fn reshaped(&self, shape: Vec<usize>) -> Self {
        Tensor::new(shape, self.data.clone())
    }

    /// Permute axes: output axis i is input axis `perm[i]`.
    pub fn transpose(&self, perm: &[usize]) -> Self {
        let in_strides = strides(&self.shape);
        let out_shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let mut data = Vec::with_capacity(self.data.len());
        for_each_index(&out_shape, |idx| {
            let off: usize = idx.iter().zip(perm).map(|(&i, &p)| i * in_strides[p]).sum();
            data.push(self.data[off].clone());
        });
        Tensor {
            shape: out_shape,
            data,
        }
    }

    /// Broadcast to `shape` (numpy rules; `shape` must be a valid broadcast target).
    pub fn broadcast_to(&self, shape: &[usize]) -> Self {
        if self.shape == shape {
            return self.clone();
        }
        let map = broadcast_index_map(&self.shape, shape);
        Tensor {
            shape: shape.to_vec(),
            data: map.iter().map(|&i| self.data[i].clone()).collect(),
        }
    }
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Calls `f` with every multi-index of `shape` in row-major order.
pub fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    if shape.contains(&0) {
        return;
    }
    let mut idx = vec![0usize; shape.len()];
    loop {
        f(&idx);
        let mut d = shape.len();
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// The numpy broadcast of two shapes, or None when they are incompatible.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// For each element of `target` (row-major), the flat index of the element of a tensor of shape
/// `from` that broadcasts onto it.
pub fn broadcast_index_map(from: &[usize], target: &[usize]) -> Vec<usize> {
    let rank = target.len();
    let from_strides = strides(from);
    let offset = rank - from.len();
    let mut map = Vec::with_capacity(numel(target));
    for_each_index(target, |idx| {
        let mut off = 0;
        for (d, &dim) in from.iter().enumerate() {
            if dim != 1 {
                off += idx[d + offset] * from_strides[d];
            }
        }
        map.push(off);
    });
    map
}

/// A reduction over `axes` of a tensor of `shape`: for each element, the index of the output
/// element (of the shape with those axes set to 1) it goes into, and the number of outputs.
pub fn reduction_map(shape: &[usize], axes: &[usize]) -> (Vec<usize>, usize) {
    let keep: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(d, &n)| if axes.contains(&d) { 1 } else { n })
        .collect();
    (broadcast_index_map(&keep, shape), numel(&keep))
}

/// Element-wise binary op with numpy broadcasting; None when the shapes are incompatible.
pub fn zip_broadcast<A: Clone, B: Clone, C>(
    a: &Tensor<A>,
    b: &Tensor<B>,
    mut f: impl FnMut(&A, &B) -> C,
) -> Option<Tensor<C>> {
    let shape = broadcast_shape(&a.shape, &b.shape)?;
    let ia = broadcast_index_map(&a.shape, &shape);
    let ib = broadcast_index_map(&b.shape, &shape);
    let data = ia
        .iter()
        .zip(&ib)
        .map(|(&i, &j)| f(&a.data[i], &b.data[j]))
        .collect();
    Some(Tensor { shape, data })
}

/// Index of the largest element (first one on ties); None for an empty slice or NaN-only data.
pub fn argmax<T: PartialOrd + Copy>(data: &[T]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, v) in data.iter().enumerate() {
        match best {
            None => best = Some(i),
            Some(b) if *v > data[b] => best = Some(i),
            _ => {}
        }
    }
    best
}

/// The geometry of a sliding window over an `[N, C, *spatial]` tensor (convolutions, pools).
pub struct Window<'a> {
    shape: &'a [usize],
    /// The input's row-major strides, computed once.
    in_strides: Vec<usize>,
    strides: &'a [usize],
    pads_begin: &'a [usize],
    /// None: every dilation is 1.
    dilations: Option<&'a [usize]>,
}

impl<'a> Window<'a> {
    pub fn new(
        shape: &'a [usize],
        strides_: &'a [usize],
        pads_begin: &'a [usize],
        dilations: Option<&'a [usize]>,
    ) -> Self {
        Window {
            shape,
            in_strides: strides(shape),
            strides: strides_,
            pads_begin,
            dilations,
        }
    }

    /// The flat offset of the input element that kernel tap `kk` of output position `p` reads in
    /// batch `b`, channel `c`; None when the tap falls in the padding. Along each spatial axis,
    /// position = p·stride + kk·dilation − pad.
    pub fn tap(&self, b: usize, c: usize, p: &[usize], kk: &[usize]) -> Option<usize> {
        let st = &self.in_strides;
        let mut off = b * st[0] + c * st[1];
        for d in 0..kk.len() {
            let dil = self.dilations.map_or(1, |v| v[d]);
            let pos = (p[d] * self.strides[d] + kk[d] * dil) as isize - self.pads_begin[d] as isize;
            if pos < 0 || pos >= self.shape[d + 2] as isize {
                return None;
            }
            off += pos as usize * st[d + 2];
        }
        Some(off)
    }

    /// Every window of a pool over this input, in output order (batch, channel, then position
    /// in `out`, the output's spatial shape): the offsets of the input elements it reads, taps in
    /// the padding left out. The evaluator and the circuit planner both walk windows this way.
    pub fn each_window(&self, out: &[usize], kernel: &[usize], mut f: impl FnMut(&[usize])) {
        let mut taps = vec![];
        for b in 0..self.shape[0] {
            for c in 0..self.shape[1] {
                for_each_index(out, |p| {
                    taps.clear();
                    for_each_index(kernel, |kk| taps.extend(self.tap(b, c, p, kk)));
                    f(&taps);
                });
            }
        }
    }

    /// Every output of a convolution with `filters` filters over this input, in output order
    /// (batch, filter, then position in `out`): its filter and the (input offset, weight index)
    /// pairs it sums, weights laid out `[filter, channel, kernel…]`, taps in the padding left
    /// out.
    pub fn each_conv_output(
        &self,
        out: &[usize],
        filters: usize,
        kernel: &[usize],
        mut f: impl FnMut(usize, &[(usize, usize)]),
    ) {
        let (cin, kn) = (self.shape[1], numel(kernel));
        let mut taps = vec![];
        for b in 0..self.shape[0] {
            for o in 0..filters {
                for_each_index(out, |p| {
                    taps.clear();
                    for c in 0..cin {
                        let mut ki = 0;
                        for_each_index(kernel, |kk| {
                            if let Some(off) = self.tap(b, c, p, kk) {
                                taps.push((off, (o * cin + c) * kn + ki));
                            }
                            ki += 1;
                        });
                    }
                    f(o, &taps);
                });
            }
        }
    }

    /// Whether every window of an output with spatial shape `out` reads at least one input
    /// element (a max over a window of padding alone has no value). Windows are products of
    /// per-axis ranges, so this holds iff it holds along each axis.
    pub fn every_window_reads(&self, out: &[usize], kernel: &[usize]) -> bool {
        (0..kernel.len()).all(|d| {
            let dil = self.dilations.map_or(1, |v| v[d]);
            let len = self.shape[d + 2] as u128;
            let (pad, dil) = (self.pads_begin[d] as u128, dil.max(1) as u128);
            (0..out[d]).all(|p| {
                // The first tap at or past the start: kk·dil ≥ pad − p·stride.
                let start = p as u128 * self.strides[d] as u128;
                let kk = pad.saturating_sub(start).div_ceil(dil);
                kk < kernel[d] as u128 && start + kk * dil - pad < len
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shape(&[2, 1, 3], &[4, 1]), Some(vec![2, 4, 3]));
        assert_eq!(broadcast_shape(&[2, 3], &[4]), None);
        let a = Tensor::new(vec![2, 1], vec![10, 20]);
        let b = Tensor::new(vec![3], vec![1, 2, 3]);
        let c = zip_broadcast(&a, &b, |x, y| x + y).unwrap();
        assert_eq!(c.shape, vec![2, 3]);
        assert_eq!(c.data, vec![11, 12, 13, 21, 22, 23]);
    }

    #[test]
    fn transpose_permutes_axes() {
        let t = Tensor::new(vec![2, 3], vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(t.transpose(&[1, 0]).data, vec![1, 4, 2, 5, 3, 6]);
        let t3 = Tensor::new(vec![1, 2, 2], vec![1, 2, 3, 4]);
        let p = t3.transpose(&[2, 0, 1]);
        assert_eq!(p.shape, vec![2, 1, 2]);
        assert_eq!(p.data, vec![1, 3, 2, 4]);
    }

    #[test]
    fn argmax_takes_first_of_ties() {
        assert_eq!(argmax(&[1, 5, 5, 2]), Some(1));
        assert_eq!(argmax::<i32>(&[]), None);
    }
}
