//! The one way a GraphQL output type is declared: a type of this module tree wrapping a domain
//! value, built with `From`, its fields read through `Deref` in an `#[Object]` impl. A resolver
//! never exposes a database row or a service type directly, so the API's shape and the
//! database's can change apart. Types whose fields are all plain data are `SimpleObject` views
//! built with `From` (alerts, audit, logs, stats): the same rule, with no impl to write.

/// `view!(AiCall(Row))` declares `pub struct AiCall(Row)` with `From<Row>` and `Deref<Target =
/// Row>`; the `#[Object] impl AiCall` beside it says what the API shows.
macro_rules! view {
    ($(#[$meta:meta])* $name:ident($inner:ty)) => {
        $(#[$meta])*
        pub struct $name(pub(crate) $inner);

        impl From<$inner> for $name {
            fn from(value: $inner) -> Self {
                Self(value)
            }
        }

        impl std::ops::Deref for $name {
            type Target = $inner;

            fn deref(&self) -> &$inner {
                &self.0
            }
        }
    };
}

pub(crate) use view;

/// A list of domain values as their output type.
pub(crate) fn views<R, V: From<R>>(values: Vec<R>) -> Vec<V> {
    values.into_iter().map(V::from).collect()
}
