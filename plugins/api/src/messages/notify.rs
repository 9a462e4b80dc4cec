//! Notifications and their delivery: what to tell people, and the HTTP request or email the
//! host sends for a notifier.

use serde::{Deserialize, Serialize};

use super::http::HttpRequest;

/// How urgent a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record.
    Info,
    /// Needs a look.
    Warning,
    /// Needs action now.
    Critical,
    /// A problem went away.
    Resolved,
}

impl Severity {
    /// Upper-case label for message text: `INFO`, `WARNING`, `CRITICAL`, `RESOLVED`.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
            Severity::Resolved => "RESOLVED",
        }
    }
}

/// Something to tell people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Short headline.
    pub title: String,
    /// The message (plain text; channels that support Markdown may render it).
    pub body: String,
    /// How urgent.
    pub severity: Severity,
    /// When it happened, milliseconds since the Unix epoch (also used for request signing).
    pub timestamp_ms: i64,
    /// Extra key/value facts.
    #[serde(default)]
    pub fields: Vec<(String, String)>,
    /// A link for more detail.
    #[serde(default)]
    pub link: Option<String>,
    /// Where to send it instead of the instance's configured destination, for channels that
    /// support it: an email address (`email`) or an `http(s)://` URL (`webhook`). Set for a
    /// user's own alerts; channels without a per-message destination ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
}

/// How to reach an SMTP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpTarget {
    /// Host name.
    pub host: String,
    /// Port (25, 465, 587, ...).
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub tls: SmtpTls,
    /// Login, if the server needs one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password (from a secret).
    #[serde(default)]
    pub password: Option<String>,
}

/// Transport security for SMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain text (only for a local relay).
    None,
    /// Upgrade with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// An email for the host to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailMessage {
    /// The server.
    pub smtp: SmtpTarget,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
}

/// What a notifier wants the host to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delivery {
    /// Send this request; then `notify.parse_response` judges the answer.
    Http {
        /// The request.
        request: HttpRequest,
    },
    /// Send this email over SMTP.
    Email {
        /// The email.
        email: EmailMessage,
    },
}

/// Whether a delivery worked, as judged from the channel's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReport {
    /// Delivered.
    pub ok: bool,
    /// The channel's own words.
    pub detail: String,
}
