//! What a trial of bale as a new user, a hostile user and an operator
//! found (issue 21), one module per finding: each test fails on the code
//! the trial ran and checks both the answer and that nothing else changed.

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod cli_output;
mod connections;
mod one_server;
mod path_limit;
mod purge;
mod stage_limits;
mod tour;
