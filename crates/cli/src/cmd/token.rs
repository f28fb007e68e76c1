//! `bale token`: issue, list and revoke API tokens.

use crate::client::{check, Client};
use anyhow::Result;
use bale_api::model::{TokenCreated, TokenRequest, TokenView};
use clap::{Args, Subcommand};
use reqwest::Method;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Issue a token; the secret is printed once.
    Create(CreateArgs),
    /// Revoke a token by its id.
    Revoke {
        /// The token's id (`bale token list` shows it; the secret is not needed).
        id: String,
    },
    /// List tokens.
    #[command(after_long_help = crate::columns::TOKENS)]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The user the token acts as (owner of what it creates).
    #[arg(long)]
    user: String,
    /// The user's group (for the group permission bits).
    #[arg(long)]
    group: String,
    /// The token may administer bale (bypasses permissions).
    #[arg(long)]
    admin: bool,
    /// A note to recognise the token by.
    #[arg(long, default_value = "")]
    comment: String,
    /// Print the whole record as JSON instead of the bare token.
    #[arg(long)]
    json: bool,
}

pub async fn run(c: &Client, cmd: &TokenCmd) -> Result<ExitCode> {
    match cmd {
        TokenCmd::Create(a) => {
            let t: TokenCreated = c
                .post_json(
                    "tokens",
                    &TokenRequest {
                        user: a.user.clone(),
                        group: a.group.clone(),
                        admin: a.admin,
                        comment: a.comment.clone(),
                    },
                )
                .await?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&t)?);
            } else {
                eprintln!(
                    "token {} for {}:{}{}",
                    t.id,
                    t.user,
                    t.group,
                    if t.admin { " (admin)" } else { "" }
                );
                println!("{}", t.token);
            }
        }
        TokenCmd::Revoke { id } => {
            let url = c.api(&format!("tokens/{id}"));
            check(c.request(Method::DELETE, &url).send().await, &format!("revoke {id}")).await?;
            eprintln!("revoked token {id}");
        }
        TokenCmd::List { json } => {
            let ts: Vec<TokenView> = c.get_json("tokens", &[]).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&ts)?);
            } else {
                println!(
                    "{:<10} {:<16} {:<16} {:<6} {:<26} COMMENT",
                    "ID", "USER", "GROUP", "ADMIN", "REVOKED"
                );
                for t in ts {
                    println!(
                        "{:<10} {:<16} {:<16} {:<6} {:<26} {}",
                        t.id,
                        t.user,
                        t.group,
                        t.admin,
                        t.revoked.unwrap_or_else(|| "-".into()),
                        t.comment
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
