//! `Micros`: an amount of money in millionths of a currency unit, as a decimal string. GraphQL's
//! `Int` is 32-bit, so money never travels as one.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};

/// Millionths of a currency unit (`"1500000"` is 1.5 CNY when the currency is CNY), as a string
/// of an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Micros(pub i64);

#[Scalar(name = "Micros")]
impl ScalarType for Micros {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => s.trim().parse::<i64>().map(Micros).map_err(|_| {
                InputValueError::custom("expected an integer number of micro-units as a string")
            }),
            Value::Number(n) => n
                .as_i64()
                .map(Micros)
                .ok_or_else(|| InputValueError::expected_type(value.clone())),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}
