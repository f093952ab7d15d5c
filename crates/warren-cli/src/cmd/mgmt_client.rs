//! A small client of the management HTTP API (RabbitMQ's, or `warren broker
//! --management-listen`'s) for `warren queues`, `connections` and `status`: one GET
//! with Basic auth, JSON back, and failures typed so each gets its own exit code.

use std::time::Duration;

use serde_json::Value;

/// How long one request may take (connect, send, read).
const TIMEOUT: Duration = Duration::from_secs(10);

/// `--management-url`, `--user`, `--password`.
#[derive(Debug, Clone, clap::Args)]
pub struct MgmtArgs {
    /// Base URL of the management HTTP API (RabbitMQ's management plugin or `warren
    /// broker --management-listen`).
    #[arg(
        long,
        env = "WARREN_MANAGEMENT_URL",
        default_value = "http://127.0.0.1:15672"
    )]
    pub management_url: String,
    /// User name for the API's Basic auth.
    #[arg(long, default_value = "guest")]
    pub user: String,
    /// Password for the API's Basic auth.
    #[arg(long, env = "WARREN_MANAGEMENT_PASSWORD", default_value = "guest")]
    pub password: String,
    /// Print the API's JSON (for scripts) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Why a request to the API failed.
#[derive(Debug, thiserror::Error)]
pub enum MgmtError {
    /// Nothing answered at the URL (refused, unreachable, timed out).
    #[error("no management API at {url}: {reason}")]
    Unavailable {
        /// The URL asked.
        url: String,
        /// What the HTTP client said.
        reason: String,
    },
    /// 401: the user or password was refused, or the user has no management tag.
    #[error("the management API at {url} refused user '{user}' (401)")]
    Refused {
        /// The URL asked.
        url: String,
        /// The user sent.
        user: String,
    },
    /// Any other answer than 200 with JSON.
    #[error("the management API at {url} answered {what}")]
    Bad {
        /// The URL asked.
        url: String,
        /// The status or the parse failure.
        what: String,
    },
}

impl MgmtArgs {
    /// GET `path` (e.g. `/api/queues`) and parse the JSON.
    pub async fn get(&self, path: &str) -> Result<Value, MgmtError> {
        let url = format!("{}{path}", self.management_url.trim_end_matches('/'));
        let unavailable = |url: &str, e: &dyn std::fmt::Display| MgmtError::Unavailable {
            url: url.to_owned(),
            reason: e.to_string(),
        };
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| unavailable(&url, &e))?;
        let resp = client
            .get(&url)
            .basic_auth(&self.user, Some(&self.password))
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_builder() {
                    MgmtError::Bad {
                        url: url.clone(),
                        what: format!("nothing: the URL is not valid ({e})"),
                    }
                } else {
                    // reqwest's own message is generic; the innermost cause says
                    // what failed ("Connection refused").
                    let mut cause: &dyn std::error::Error = &e;
                    while let Some(next) = cause.source() {
                        cause = next;
                    }
                    let reason = if e.is_timeout() {
                        format!("no answer within {}s", TIMEOUT.as_secs())
                    } else {
                        cause.to_string()
                    };
                    unavailable(&url, &reason)
                }
            })?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(MgmtError::Refused {
                url,
                user: self.user.clone(),
            });
        }
        if !status.is_success() {
            return Err(MgmtError::Bad {
                url,
                what: format!("HTTP {status}"),
            });
        }
        let text = resp.text().await.map_err(|e| unavailable(&url, &e))?;
        serde_json::from_str(&text).map_err(|e| MgmtError::Bad {
            url,
            what: format!("with something that is not JSON ({e})"),
        })
    }
}
