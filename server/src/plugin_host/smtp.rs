//! Email delivery for notifier plugins, over SMTP with lettre.

use std::time::Duration;

use cloudbase_plugin_api::{DeliveryReport, EmailMessage, SmtpTls};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

fn failed(detail: impl Into<String>) -> DeliveryReport {
    DeliveryReport {
        ok: false,
        detail: detail.into(),
    }
}

/// Sends `email`; a refusal or an unreachable server is a failed report, not an error.
pub async fn send(email: &EmailMessage, timeout: Duration) -> DeliveryReport {
    let mut builder = Message::builder().subject(email.subject.clone());
    match email.from.parse() {
        Ok(from) => builder = builder.from(from),
        Err(e) => return failed(format!("invalid sender {:?}: {e}", email.from)),
    }
    for to in &email.to {
        match to.parse() {
            Ok(mailbox) => builder = builder.to(mailbox),
            Err(e) => return failed(format!("invalid recipient {to:?}: {e}")),
        }
    }
    let message = match builder
        .header(ContentType::TEXT_PLAIN)
        .body(email.text.clone())
    {
        Ok(m) => m,
        Err(e) => return failed(format!("cannot build the email: {e}")),
    };
    let smtp = &email.smtp;
    let transport = match smtp.tls {
        SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &smtp.host,
        )),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host),
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host),
    };
    let mut transport = match transport {
        Ok(t) => t.port(smtp.port).timeout(Some(timeout)),
        Err(e) => return failed(format!("SMTP set-up failed: {e}")),
    };
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    match transport.build().send(message).await {
        Ok(response) => DeliveryReport {
            ok: response.is_positive(),
            detail: format!("SMTP {}", response.code()),
        },
        Err(e) => failed(format!("SMTP delivery failed: {e}")),
    }
}
