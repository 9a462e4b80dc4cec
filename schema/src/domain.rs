//! The closed vocabularies of the domain: each enum has its one mapping to the text stored in the
//! database (and sent across instances), here and nowhere else. A stored value that no variant
//! names is an error when it is read, never a silent default.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::pg::Pg;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;
use diesel::sqlite::Sqlite;

/// A stored value that is not one of an enum's names.
#[derive(Debug, thiserror::Error)]
#[error("unknown {kind} `{value}` in the database")]
pub struct UnknownValue {
    kind: &'static str,
    value: String,
}

/// Declares a text-stored enum: its GraphQL enum, its names (`as_str`/`FromStr`), serde as those
/// names, and its Diesel mapping to `Text` on both backends.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident as $kind:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, async_graphql::Enum,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = Text)]
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// The name stored in the database.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $( $text => Ok(Self::$variant), )+
                    _ => Err(UnknownValue { kind: $kind, value: s.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl ToSql<Text, Sqlite> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                out.set_value(self.as_str());
                Ok(IsNull::No)
            }
        }

        impl ToSql<Text, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                <str as ToSql<Text, Pg>>::to_sql(self.as_str(), &mut out.reborrow())
            }
        }

        impl FromSql<Text, Sqlite> for $name {
            fn from_sql(value: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
                let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
                Ok(text.parse()?)
            }
        }

        impl FromSql<Text, Pg> for $name {
            fn from_sql(value: <Pg as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
                let text = <String as FromSql<Text, Pg>>::from_sql(value)?;
                Ok(text.parse()?)
            }
        }
    };
}

text_enum! {
    /// Where a call stands.
    #[graphql(name = "AiCallStatus")]
    pub enum CallStatus as "call status" {
        /// In flight.
        Pending = "PENDING",
        /// Answered.
        Succeeded = "SUCCEEDED",
        /// Failed; see `errorCode`.
        Failed = "FAILED",
        /// The client went away before the end.
        Cancelled = "CANCELLED",
    }
}

text_enum! {
    /// Where token counts came from.
    pub enum UsageSource as "usage source" {
        /// Reported by the provider.
        Reported = "REPORTED",
        /// Estimated by the gateway (the provider reported none).
        Estimated = "ESTIMATED",
    }
}

text_enum! {
    /// Who wrote a message of a conversation.
    pub enum MessageRole as "message role" {
        /// Instructions placed first.
        System = "SYSTEM",
        /// The person.
        User = "USER",
        /// The model.
        Assistant = "ASSISTANT",
    }
}

text_enum! {
    /// Whether a plugin (or one instance of it) is usable.
    pub enum PluginStatus as "plugin status" {
        /// Loaded and, for an instance, created.
        Loaded = "LOADED",
        /// Rejected: see the reason.
        Failed = "FAILED",
        /// Turned off in config, or missing a required secret.
        Disabled = "DISABLED",
    }
}

text_enum! {
    /// A provider instance's circuit breaker on one server instance.
    pub enum BreakerState as "breaker state" {
        /// Calls go through.
        Closed = "CLOSED",
        /// Calls fail over at once, without reaching the provider.
        Open = "OPEN",
        /// A few probe calls go through to see whether the provider is back.
        HalfOpen = "HALF_OPEN",
    }
}

text_enum! {
    /// Where one delivery of an alert stands.
    pub enum DeliveryStatus as "delivery status" {
        /// Waiting for its (next) attempt.
        Pending = "PENDING",
        /// Claimed by an instance that is sending it.
        Sending = "SENDING",
        /// The channel took it.
        Delivered = "DELIVERED",
        /// Every attempt failed.
        Failed = "FAILED",
    }
}

impl From<MessageRole> for cloudbase_plugin_api::ChatRole {
    fn from(role: MessageRole) -> Self {
        match role {
            MessageRole::System => Self::System,
            MessageRole::User => Self::User,
            MessageRole::Assistant => Self::Assistant,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_and_an_unknown_one_is_an_error() {
        for status in [
            CallStatus::Pending,
            CallStatus::Succeeded,
            CallStatus::Failed,
            CallStatus::Cancelled,
        ] {
            assert_eq!(status.as_str().parse::<CallStatus>().ok(), Some(status));
        }
        let unknown = "RUNNING".parse::<CallStatus>().err().map(|e| e.to_string());
        assert_eq!(
            unknown.as_deref(),
            Some("unknown call status `RUNNING` in the database")
        );
        assert!("pending".parse::<CallStatus>().is_err(), "names are exact");
        let json = serde_json::to_string(&PluginStatus::Disabled).ok();
        assert_eq!(json.as_deref(), Some("\"DISABLED\""));
        assert!(serde_json::from_str::<DeliveryStatus>("\"SENT\"").is_err());
    }
}
