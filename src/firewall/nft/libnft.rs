//! nft in-process: the system's `libnftables.so.1` (the library the `nft`
//! command is built on, shipped in the same Debian package family), loaded
//! at run time. A transaction then costs a netlink round trip instead of a
//! process start: about 0.3 ms against 3 to 10 ms for `nft -f -`, which is
//! most of a single ban's line-to-ban latency.
//!
//! Owns loading the library and turning an nft argv into a library call,
//! each in a fresh context (as the command starts with an empty cache; a
//! context kept would also keep the last listing's elements in memory). It runs exactly what the command would (`-j`, `-t`, `-f -`,
//! and a command line); it must not build commands or read their output.
//! When the library cannot be loaded, the caller runs the `nft` command.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::OnceLock;

use libloading::Library;

/// libnftables' output flags (`libnftables.h`).
const OUTPUT_JSON: c_uint = 1 << 4;
const OUTPUT_TERSE: c_uint = 1 << 11;

type Ctx = *mut c_void;

/// The library's entry points.
struct Lib {
    /// Keeps the symbols below valid.
    _lib: Library,
    new: unsafe extern "C" fn(c_uint) -> Ctx,
    free: unsafe extern "C" fn(Ctx),
    buffer_output: unsafe extern "C" fn(Ctx) -> c_int,
    buffer_error: unsafe extern "C" fn(Ctx) -> c_int,
    set_flags: unsafe extern "C" fn(Ctx, c_uint),
    run: unsafe extern "C" fn(Ctx, *const c_char) -> c_int,
    output: unsafe extern "C" fn(Ctx) -> *const c_char,
    error: unsafe extern "C" fn(Ctx) -> *const c_char,
}

/// Why the library could not run a command (its error text, as `nft`
/// prints it on stderr).
#[derive(Debug)]
pub(super) struct LibError(pub String);

fn loaded() -> Option<&'static Lib> {
    static LIB: OnceLock<Option<Lib>> = OnceLock::new();
    LIB.get_or_init(|| match load() {
        Ok(lib) => {
            tracing::debug!("nft transactions run in-process through libnftables");
            Some(lib)
        }
        Err(why) => {
            tracing::info!(%why, "libnftables not loaded: nft transactions run the nft command");
            None
        }
    })
    .as_ref()
}

fn load() -> Result<Lib, String> {
    // SAFETY: loading the system's libnftables runs its initialisers, which
    // have no preconditions; each symbol is declared with its C prototype
    // from libnftables.h, and the fn pointers stay valid while `_lib` lives
    // (for the whole process: it is never dropped).
    unsafe {
        let lib = Library::new("libnftables.so.1").map_err(|e| e.to_string())?;
        macro_rules! sym {
            ($name:literal) => {
                *lib.get($name).map_err(|e| e.to_string())?
            };
        }
        Ok(Lib {
            new: sym!(b"nft_ctx_new\0"),
            free: sym!(b"nft_ctx_free\0"),
            buffer_output: sym!(b"nft_ctx_buffer_output\0"),
            buffer_error: sym!(b"nft_ctx_buffer_error\0"),
            set_flags: sym!(b"nft_ctx_output_set_flags\0"),
            run: sym!(b"nft_run_cmd_from_buffer\0"),
            output: sym!(b"nft_ctx_get_output_buffer\0"),
            error: sym!(b"nft_ctx_get_error_buffer\0"),
            _lib: lib,
        })
    }
}

/// Whether the library is there (loading it on first use).
#[cfg(test)]
fn available() -> bool {
    loaded().is_some()
}

/// Runs the nft argv `args` (without the program) with `input` as what
/// `-f -` would read. `None`: the library is not there, or the argv is not
/// one it runs (then run the command).
pub(super) fn run(args: &[&str], input: Option<&[u8]>) -> Option<Result<String, LibError>> {
    let lib = loaded()?;
    let mut flags = 0;
    let mut rest = args;
    while let Some((first, tail)) = rest.split_first() {
        match *first {
            "-j" | "--json" => flags |= OUTPUT_JSON,
            "-t" | "--terse" => flags |= OUTPUT_TERSE,
            _ => break,
        }
        rest = tail;
    }
    let text = match (rest, input) {
        (["-f", "-"], Some(data)) => CString::new(data).ok()?,
        (cmd, None) if !cmd.is_empty() && !cmd.iter().any(|a| a.starts_with('-')) => {
            CString::new(cmd.join(" ")).ok()?
        }
        _ => return None,
    };
    // SAFETY: the context is made here, used by this thread only and freed
    // before returning; `text` is NUL-terminated; the buffers the library
    // returns are NUL-terminated and valid until its next call on the
    // context, and copied before that.
    unsafe {
        let ctx = (lib.new)(0);
        if ctx.is_null() {
            return Some(Err(LibError("nft_ctx_new failed".into())));
        }
        if (lib.buffer_output)(ctx) != 0 || (lib.buffer_error)(ctx) != 0 {
            (lib.free)(ctx);
            return Some(Err(LibError("cannot buffer libnftables output".into())));
        }
        (lib.set_flags)(ctx, flags);
        let rc = (lib.run)(ctx, text.as_ptr());
        let read = |p: *const c_char| {
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        let out = read((lib.output)(ctx));
        let err = read((lib.error)(ctx));
        (lib.free)(ctx);
        Some(if rc == 0 {
            Ok(out)
        } else {
            let err = err.trim();
            Err(LibError(if err.is_empty() {
                format!("libnftables returned {rc}")
            } else {
                err.to_string()
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_it_does_not_run_is_left_to_the_command() {
        if !available() {
            eprintln!("skipped: libnftables.so.1 is not installed");
            return;
        }
        assert!(run(&["-j", "-f", "/etc/x.nft"], None).is_none());
        assert!(run(&["--check", "-f", "-"], Some(b"")).is_none());
        assert!(run(&["-j"], None).is_none());
    }
}
