//! The break-test overlay's state: the changes grouped as the break test groups them, a sample
//! of the output elements (first, last, the largest and the runner-up of each output) unless the
//! user asks for all, the selected change's value before and after, and the chain bar as it
//! stood before the overlay opened.

use super::app::Statuses;
use crate::receipt::Folder;
use crate::receipt::break_test::{Change, Group, cases};

/// A line of the overlay's list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    Header(Group),
    /// A change, by its index in [`BreakView::items`].
    Item(usize),
    /// Output elements left out of the sample: Enter shows them all.
    More(usize),
}

pub struct BreakView {
    pub items: Vec<Change>,
    /// The selected row: an item or the "more" row.
    pub selected: Row,
    /// Every output element, not the sample.
    pub all_outputs: bool,
    /// The output elements of the sample, `(tensor, index)`.
    sample: Vec<(usize, usize)>,
    /// The selected change's value before and after (None on the "more" row).
    pub preview: Option<(String, String)>,
    /// (item index, verified, reason) of the last change applied.
    pub verdict: Option<(usize, bool, Option<String>)>,
    pub running: bool,
    /// The chain bar before the overlay opened: restored when it closes.
    pub saved: Statuses,
}

impl BreakView {
    /// The overlay for `folder`, on its first output element.
    pub fn open(folder: &Folder, saved: Statuses) -> Self {
        let items = cases(folder);
        let mut v = BreakView {
            items,
            selected: Row::More(0),
            all_outputs: false,
            sample: sample(folder),
            preview: None,
            verdict: None,
            running: false,
            saved,
        };
        v.selected = v
            .rows()
            .into_iter()
            .find(|r| !matches!(r, Row::Header(_)))
            .unwrap_or(Row::More(0));
        v.preview(folder);
        v
    }

    fn shown(&self, c: &Change) -> bool {
        match c.element {
            Some(e) => self.all_outputs || self.sample.contains(&e),
            None => true,
        }
    }

    /// The list: each group's header and its changes, with output elements sampled.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = vec![];
        let mut group = None;
        let mut hidden = 0;
        for (i, c) in self.items.iter().enumerate() {
            if group != Some(c.group) {
                if hidden > 0 {
                    rows.push(Row::More(hidden));
                    hidden = 0;
                }
                rows.push(Row::Header(c.group));
                group = Some(c.group);
            }
            if self.shown(c) {
                rows.push(Row::Item(i));
            } else {
                hidden += 1;
            }
        }
        if hidden > 0 {
            rows.push(Row::More(hidden));
        }
        rows
    }

    /// The selected change, if an item is selected.
    pub fn change(&self) -> Option<(usize, &Change)> {
        match self.selected {
            Row::Item(i) => self.items.get(i).map(|c| (i, c)),
            _ => None,
        }
    }

    /// Move `by` selectable rows (headers are skipped).
    pub fn step(&mut self, by: i32, folder: &Folder) {
        let rows: Vec<Row> = self
            .rows()
            .into_iter()
            .filter(|r| !matches!(r, Row::Header(_)))
            .collect();
        let at = rows.iter().position(|r| *r == self.selected).unwrap_or(0) as i64;
        let to = (at + i64::from(by)).clamp(0, rows.len() as i64 - 1);
        if let Some(r) = rows.get(to as usize) {
            self.selected = *r;
        }
        self.preview(folder);
    }

    /// Jump to the first row of the next (`forward`) or previous group.
    pub fn jump(&mut self, forward: bool, folder: &Folder) {
        let rows = self.rows();
        let at = rows.iter().position(|r| *r == self.selected).unwrap_or(0);
        let headers: Vec<usize> = (0..rows.len())
            .filter(|&i| matches!(rows[i], Row::Header(_)))
            .collect();
        // The header of the selected row's group.
        let mine = headers.iter().rposition(|&h| h < at).unwrap_or(0);
        let target = if forward {
            headers.get(mine + 1)
        } else {
            headers.get(mine.saturating_sub(1))
        };
        if let Some(&h) = target
            && let Some(r) = rows.get(h + 1)
        {
            self.selected = *r;
        }
        self.preview(folder);
    }

    /// Show every output element, staying on the first of those that were hidden.
    pub fn show_all(&mut self, folder: &Folder) {
        let first_hidden = self
            .items
            .iter()
            .position(|c| c.element.is_some() && !self.shown(c));
        self.all_outputs = true;
        if let Some(i) = first_hidden {
            self.selected = Row::Item(i);
        }
        self.preview(folder);
    }

    /// The selected change's value in `folder` and in the changed copy.
    fn preview(&mut self, folder: &Folder) {
        self.preview = self.change().map(|(_, c)| {
            let mut changed = folder.clone();
            (c.tamper)(&mut changed);
            ((c.value)(folder), (c.value)(&changed))
        });
    }
}

/// Per output tensor: its first and last element, the largest and the runner-up.
fn sample(folder: &Folder) -> Vec<(usize, usize)> {
    let mut out = vec![];
    for (t, o) in folder.receipt.output.iter().enumerate() {
        let n = o.integers.len();
        if n == 0 {
            continue;
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(o.integers[i]));
        for i in [0, n - 1].into_iter().chain(order.into_iter().take(2)) {
            if !out.contains(&(t, i)) {
                out.push((t, i));
            }
        }
    }
    out
}
