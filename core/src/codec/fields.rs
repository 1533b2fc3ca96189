//! The hash layout: each top-level field of the data as a string, as Spring's
//! `StringRedisTemplate` writes it (`id` = `"598"`), and the way back.

use serde::de::DeserializeOwned;
use serde::de::value::{Error as DeError, MapDeserializer};
use serde::de::{self, Error as _, IntoDeserializer, Visitor};
use serde::{Deserializer, Serialize, forward_to_deserialize_any};
use serde_json::Value;

use super::CorruptData;
use crate::error::Error;

/// Top-level fields as strings: strings as they are, numbers and booleans in their decimal
/// or `true`/`false` form, nested values as JSON text, `null`s left out (as the Java seed's
/// `setIgnoreNullValue(true)` does).
pub(super) fn to_fields<T: Serialize>(data: &T) -> Result<Vec<(String, String)>, Error> {
    let value = serde_json::to_value(data).map_err(|e| Error::Encode(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(Error::Encode(
            "the hash codec needs data that serializes as a map or struct".into(),
        ));
    };
    Ok(map
        .into_iter()
        .filter_map(|(name, value)| {
            let text = match value {
                Value::Null => return None,
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                nested @ (Value::Array(_) | Value::Object(_)) => nested.to_string(),
            };
            Some((name, text))
        })
        .collect())
}

pub(super) fn from_fields<T: DeserializeOwned>(
    fields: &[(String, String)],
) -> Result<T, CorruptData> {
    let map = MapDeserializer::new(
        fields
            .iter()
            .map(|(name, value)| (name.as_str(), FieldValue(value))),
    );
    T::deserialize(map).map_err(|e: DeError| CorruptData(e.to_string()))
}

/// One field's string, read as whatever type the target asks for.
struct FieldValue<'a>(&'a str);

impl<'de> IntoDeserializer<'de, DeError> for FieldValue<'de> {
    type Deserializer = Self;
    fn into_deserializer(self) -> Self {
        self
    }
}

macro_rules! parse_as {
    ($($method:ident => $visit:ident: $t:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let parsed: $t = self.0.parse().map_err(|_| {
                DeError::custom(format_args!(
                    "expected {}, found {:?}", stringify!($t), self.0
                ))
            })?;
            visitor.$visit(parsed)
        }
    )*};
}

impl<'de> Deserializer<'de> for FieldValue<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_str(self.0)
    }

    parse_as! {
        deserialize_bool => visit_bool: bool,
        deserialize_i8 => visit_i8: i8,
        deserialize_i16 => visit_i16: i16,
        deserialize_i32 => visit_i32: i32,
        deserialize_i64 => visit_i64: i64,
        deserialize_i128 => visit_i128: i128,
        deserialize_u8 => visit_u8: u8,
        deserialize_u16 => visit_u16: u16,
        deserialize_u32 => visit_u32: u32,
        deserialize_u64 => visit_u64: u64,
        deserialize_u128 => visit_u128: u128,
        deserialize_f32 => visit_f32: f32,
        deserialize_f64 => visit_f64: f64,
        deserialize_char => visit_char: char,
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if self.0.starts_with('{') {
            return self.nested(|de| de.deserialize_enum(name, variants, visitor));
        }
        visitor.visit_enum(de::value::StrDeserializer::<DeError>::new(self.0))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.nested(|de| de.deserialize_seq(visitor))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.nested(|de| de.deserialize_map(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.nested(|de| de.deserialize_struct(name, fields, visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.nested(|de| de.deserialize_tuple(len, visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.nested(|de| de.deserialize_tuple_struct(name, len, visitor))
    }

    forward_to_deserialize_any! {
        str string bytes byte_buf unit unit_struct identifier ignored_any
    }
}

impl<'a> FieldValue<'a> {
    /// Nested values are stored as JSON text.
    fn nested<T>(
        self,
        read: impl FnOnce(
            &mut serde_json::Deserializer<serde_json::de::StrRead<'a>>,
        ) -> Result<T, serde_json::Error>,
    ) -> Result<T, DeError> {
        let mut de = serde_json::Deserializer::from_str(self.0);
        let value = read(&mut de).map_err(DeError::custom)?;
        de.end().map_err(DeError::custom)?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct JavaUser {
        id: u64,
        nick_name: String,
        icon: String,
        vip: Option<bool>,
        tags: Vec<String>,
    }

    fn strings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn fields_are_strings_like_spring_writes_them() {
        let user = JavaUser {
            id: 598,
            nick_name: "user_abc".into(),
            icon: String::new(),
            vip: None,
            tags: vec!["a".into()],
        };
        let mut fields = to_fields(&user).unwrap();
        fields.sort();
        assert_eq!(
            fields,
            strings(&[
                ("icon", ""),
                ("id", "598"),
                ("nickName", "user_abc"),
                ("tags", "[\"a\"]")
            ])
        );
        let back: JavaUser = from_fields(&fields).unwrap();
        assert_eq!(back, user);
    }

    #[test]
    fn a_hash_written_by_another_program_loads() {
        #[derive(Debug, PartialEq, Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Dto {
            id: i64,
            nick_name: String,
            icon: String,
        }
        let dto: Dto = from_fields(&strings(&[
            ("nickName", "123"),
            ("icon", "/img/a.png"),
            ("id", "1010"),
            ("extra", "ignored"),
        ]))
        .unwrap();
        assert_eq!(
            dto,
            Dto {
                id: 1010,
                nick_name: "123".into(),
                icon: "/img/a.png".into()
            }
        );
    }

    #[test]
    fn bad_field_values_are_errors_not_panics() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Dto {
            id: u8,
            tags: Vec<String>,
        }
        for fields in [
            strings(&[("id", "x"), ("tags", "[]")]),
            strings(&[("id", "300"), ("tags", "[]")]),
            strings(&[("id", "1"), ("tags", "[1,")]),
            strings(&[("id", "1"), ("tags", "[] trailing")]),
            strings(&[("tags", "[]")]),
        ] {
            assert!(from_fields::<Dto>(&fields).is_err(), "{fields:?}");
        }
    }

    #[test]
    fn non_map_data_cannot_use_the_hash_codec() {
        assert!(to_fields(&5u8).is_err());
    }
}
