//! The daemon. (in progress)

pub fn main(_args: crate::cli::RunArgs) -> i32 {
    2
}
