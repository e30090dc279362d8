//! Panics that zkreceipt catches (tract meeting a malformed model) become errors naming the
//! file; their report must not reach the user first. A panic hook runs before `catch_unwind`
//! gets the panic, so the hook installed here stays silent on a thread while it runs
//! [`catch_quietly`], and hands every other panic to the hook it wraps.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    /// How many [`catch_quietly`] calls this thread is inside.
    static QUIET: Cell<u32> = const { Cell::new(0) };
}

/// Wrap the current panic hook so that it stays silent for panics [`catch_quietly`] catches.
/// Call it after installing any other hook (a hook installed later runs first).
pub fn install_hook() {
    let inner = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if QUIET.with(Cell::get) == 0 {
            inner(info);
        }
    }));
}

/// Run `f`, catching a panic inside it; Err holds the first line of the panic's message (an
/// `unwrap` of an error may go on with the error's backtrace).
pub fn catch_quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    QUIET.with(|q| q.set(q.get() + 1));
    let r = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(q.get() - 1));
    r.map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        msg.lines().next().unwrap_or_default().to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_is_an_error_with_its_message() {
        assert_eq!(catch_quietly(|| 7), Ok(7));
        let r: Result<(), String> =
            catch_quietly(|| panic!("tract {}\n\nStack backtrace:", "broke"));
        assert_eq!(r, Err("tract broke".into()));
        assert_eq!(QUIET.with(Cell::get), 0);
    }
}
