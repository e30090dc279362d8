//! The lookup tables of a plan: functions (`TableSpec`) and constants read at runtime indices
//! (`DataTable`). Both kinds share one id sequence and the one table argument of
//! [`super::super::chips::TableChip`].

use serde::{Deserialize, Serialize};

use crate::quantize::{TableFn, table_entry};

/// A lookup table of the circuit: all `(x, f(x))` for `lo ≤ x ≤ hi`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableSpec {
    pub id: u64,
    pub func: TableFn,
    pub in_scale: i32,
    pub out_scale: i32,
    pub lo: i64,
    pub hi: i64,
    /// With `step_bits` b, entry q holds f at `(q + next)·2^b` (the points of an interpolated
    /// table); 0 for an exact table.
    #[serde(default)]
    pub step_bits: u32,
    #[serde(default)]
    pub next: bool,
}

impl TableSpec {
    pub fn len(&self) -> usize {
        (self.hi - self.lo + 1) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.hi < self.lo
    }

    pub fn rows(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        let at = |x: i64| (x + i64::from(self.next)) << self.step_bits;
        (self.lo..=self.hi).map(move |x| {
            (
                x,
                table_entry(self.func, at(x), self.in_scale, self.out_scale),
            )
        })
    }
}

/// A lookup table of constants selected by a runtime index ([`crate::quantize::QOp::Select`] with fixed weights):
/// entry `j` is `((lo + j)·2^shift, values[j])`, so an index looks up what it selects.
#[derive(Clone, Debug, PartialEq)]
pub struct DataTable {
    pub id: u64,
    /// The quantized node it serves (the first, when several select from the same entries).
    pub node: String,
    pub lo: i64,
    pub shift: u32,
    pub values: Vec<i64>,
}

impl DataTable {
    pub fn rows(&self) -> impl Iterator<Item = (i128, i64)> + '_ {
        self.values
            .iter()
            .enumerate()
            .map(|(j, &v)| ((self.lo as i128 + j as i128) << self.shift, v))
    }

    /// What circuit.json records: the entries come from the quantized model.
    pub fn info(&self) -> DataTableInfo {
        DataTableInfo {
            id: self.id,
            node: self.node.clone(),
            lo: self.lo,
            hi: self.lo + self.values.len() as i64 - 1,
            shift: self.shift,
        }
    }
}

/// A [`DataTable`] as circuit.json describes it: its keys `lo..=hi` (times `2^shift`), and the
/// node whose constant it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataTableInfo {
    pub id: u64,
    pub node: String,
    pub lo: i64,
    pub hi: i64,
    pub shift: u32,
}
