//! Codecs of typed calls (SPEC v2): how arguments and return values become bodies,
//! chosen by `content_type`. JSON is the default; MessagePack (structs as maps, so
//! peers in other languages can read them) and CBOR are behind the `msgpack` and
//! `cbor` features, both on by default.
//!
//! Decoding reports the path of the field that failed (`b`, `items[2].name`), so an
//! `invalid_argument` reply can name the argument that was wrong.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// `content_type` of JSON bodies (also the codec of a request without `content_type`).
pub const JSON: &str = "application/json";
/// `content_type` of MessagePack bodies.
pub const MSGPACK: &str = "application/msgpack";
/// `content_type` of CBOR bodies.
pub const CBOR: &str = "application/cbor";

/// A body encoding of typed calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Codec {
    /// JSON (`application/json`), with serde_json.
    #[default]
    Json,
    /// MessagePack (`application/msgpack`), with rmp-serde; structs are encoded as maps.
    #[cfg(feature = "msgpack")]
    MsgPack,
    /// CBOR (`application/cbor`), with ciborium.
    #[cfg(feature = "cbor")]
    Cbor,
}

/// Why a value could not be encoded or decoded, or a `content_type` is not a codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The `content_type` names no codec this build knows.
    #[error("content_type `{content_type}` is not a codec of typed calls; use one of: {accepted}")]
    UnknownContentType {
        /// The `content_type` received.
        content_type: String,
        /// The content types accepted, comma separated.
        accepted: String,
    },
    /// The value could not be encoded.
    #[error("cannot encode a {codec} body: {reason}")]
    Encode {
        /// The codec's content type.
        codec: &'static str,
        /// What the encoder said.
        reason: String,
    },
    /// The body does not decode into the expected type.
    #[error("{}", decode_message(codec, path, reason))]
    Decode {
        /// The codec's content type.
        codec: &'static str,
        /// Where in the value decoding failed (`b`, `items[2].name`); empty at the top.
        path: String,
        /// What the decoder said.
        reason: String,
    },
}

fn decode_message(codec: &str, path: &str, reason: &str) -> String {
    if path.is_empty() {
        format!("cannot decode the {codec} body: {reason}")
    } else {
        format!("cannot decode the {codec} body at `{path}`: {reason}")
    }
}

impl Codec {
    /// Every codec of this build, JSON first.
    pub const ALL: &'static [Codec] = &[
        Codec::Json,
        #[cfg(feature = "msgpack")]
        Codec::MsgPack,
        #[cfg(feature = "cbor")]
        Codec::Cbor,
    ];

    /// The `content_type` this codec sends.
    pub fn content_type(self) -> &'static str {
        match self {
            Codec::Json => JSON,
            #[cfg(feature = "msgpack")]
            Codec::MsgPack => MSGPACK,
            #[cfg(feature = "cbor")]
            Codec::Cbor => CBOR,
        }
    }

    /// The codec a `content_type` names: JSON when absent. Parameters (`; charset=utf-8`)
    /// and case are ignored; `application/x-msgpack` is accepted as MessagePack.
    pub fn from_content_type(content_type: Option<&str>) -> Result<Codec, CodecError> {
        let Some(raw) = content_type else {
            return Ok(Codec::Json);
        };
        let essence = raw.split(';').next().unwrap_or("").trim();
        let found = Codec::ALL.iter().copied().find(|c| {
            essence.eq_ignore_ascii_case(c.content_type())
                || c.aliases().iter().any(|a| essence.eq_ignore_ascii_case(a))
        });
        found.ok_or_else(|| CodecError::UnknownContentType {
            content_type: raw.to_owned(),
            accepted: Codec::ALL
                .iter()
                .map(|c| c.content_type())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Other names of this codec's content type seen in the wild.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Codec::Json => &[],
            #[cfg(feature = "msgpack")]
            Codec::MsgPack => &["application/x-msgpack", "application/vnd.msgpack"],
            #[cfg(feature = "cbor")]
            Codec::Cbor => &[],
        }
    }

    /// The encoding of an empty map (`{}`), what a call without arguments sends.
    pub fn empty_map(self) -> &'static [u8] {
        match self {
            Codec::Json => b"{}",
            #[cfg(feature = "msgpack")]
            Codec::MsgPack => &[0x80],
            #[cfg(feature = "cbor")]
            Codec::Cbor => &[0xa0],
        }
    }

    /// Encodes `value`.
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        let fail = |reason: String| CodecError::Encode {
            codec: self.content_type(),
            reason,
        };
        match self {
            Codec::Json => serde_json::to_vec(value).map_err(|e| fail(e.to_string())),
            #[cfg(feature = "msgpack")]
            Codec::MsgPack => {
                rmp_serde::encode::to_vec_named(value).map_err(|e| fail(e.to_string()))
            }
            #[cfg(feature = "cbor")]
            Codec::Cbor => {
                let mut out = Vec::new();
                ciborium::ser::into_writer(value, &mut out).map_err(|e| fail(e.to_string()))?;
                Ok(out)
            }
        }
    }

    /// Decodes a `T` from `body`, naming the path of the field that failed.
    pub fn decode<T: DeserializeOwned>(self, body: &[u8]) -> Result<T, CodecError> {
        let fail = |path: &serde_path_to_error::Path, reason: String| CodecError::Decode {
            codec: self.content_type(),
            path: path_text(path),
            reason,
        };
        match self {
            Codec::Json => {
                let mut de = serde_json::Deserializer::from_slice(body);
                let value = serde_path_to_error::deserialize(&mut de)
                    .map_err(|e| fail(e.path(), e.inner().to_string()))?;
                de.end().map_err(|e| CodecError::Decode {
                    codec: JSON,
                    path: String::new(),
                    reason: e.to_string(),
                })?;
                Ok(value)
            }
            #[cfg(feature = "msgpack")]
            Codec::MsgPack => {
                let mut de = rmp_serde::Deserializer::new(body);
                serde_path_to_error::deserialize(&mut de)
                    .map_err(|e| fail(e.path(), e.inner().to_string()))
            }
            #[cfg(feature = "cbor")]
            Codec::Cbor => ciborium::de::from_reader(body).map_err(|e| cbor_error::<T, _>(body, e)),
        }
    }
}

/// A CBOR decode error with the failing field's path. ciborium does not expose its
/// deserializer, so the body is read again into a value tree, and that tree is
/// deserialized with path tracking (only on this error path).
#[cfg(feature = "cbor")]
fn cbor_error<T: DeserializeOwned, E: std::fmt::Display>(body: &[u8], first: E) -> CodecError {
    let located = ciborium::de::from_reader::<serde_value::Value, _>(body)
        .ok()
        .and_then(|tree| {
            // serde's own error type, for serde's wording ("missing field `a`").
            let de = serde_value::ValueDeserializer::<serde::de::value::Error>::new(tree);
            serde_path_to_error::deserialize::<_, T>(de).err()
        });
    match located {
        Some(e) => CodecError::Decode {
            codec: CBOR,
            path: path_text(e.path()),
            reason: e.inner().to_string(),
        },
        None => CodecError::Decode {
            codec: CBOR,
            path: String::new(),
            reason: first.to_string(),
        },
    }
}

/// A field path as text, empty for the top of the value (serde_path_to_error writes `.`).
fn path_text(path: &serde_path_to_error::Path) -> String {
    let text = path.to_string();
    if text == "." {
        String::new()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Args {
        a: i64,
        items: Vec<Item>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Item {
        name: String,
    }

    fn sample() -> Args {
        Args {
            a: 2,
            items: vec![Item { name: "x".into() }],
        }
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in Codec::ALL {
            let body = codec.encode(&sample()).unwrap();
            assert_eq!(codec.decode::<Args>(&body).unwrap(), sample(), "{codec:?}");
            assert_eq!(
                Codec::from_content_type(Some(codec.content_type())).unwrap(),
                *codec
            );
        }
    }

    #[test]
    fn content_types_parse_with_parameters_and_default_to_json() {
        assert_eq!(Codec::from_content_type(None).unwrap(), Codec::Json);
        assert_eq!(
            Codec::from_content_type(Some("Application/JSON; charset=utf-8")).unwrap(),
            Codec::Json
        );
        let err = Codec::from_content_type(Some("text/plain")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("text/plain") && text.contains("application/json"),
            "{text}"
        );
    }

    #[test]
    fn decode_errors_name_the_field_path() {
        for codec in Codec::ALL {
            let wrong = serde_json::json!({"a": 2, "items": [{"name": 7}]});
            let body = codec.encode(&wrong).unwrap();
            match codec.decode::<Args>(&body) {
                Err(CodecError::Decode { path, .. }) => {
                    assert_eq!(path, "items[0].name", "{codec:?}")
                }
                other => panic!("{codec:?}: expected a decode error, got {other:?}"),
            }
            let missing = codec.encode(&serde_json::json!({"items": []})).unwrap();
            let err = codec.decode::<Args>(&missing).unwrap_err();
            assert!(err.to_string().contains("`a`"), "{codec:?}: {err}");
        }
    }

    #[test]
    fn json_rejects_trailing_bytes_and_empty_map_decodes() {
        assert!(Codec::Json.decode::<i64>(b"5 6").is_err());
        #[derive(Debug, Deserialize, PartialEq)]
        struct NoArgs {}
        for codec in Codec::ALL {
            assert_eq!(
                codec.decode::<NoArgs>(codec.empty_map()).unwrap(),
                NoArgs {}
            );
        }
    }

    #[cfg(feature = "msgpack")]
    #[test]
    fn msgpack_encodes_structs_as_maps() {
        let body = Codec::MsgPack.encode(&Item { name: "x".into() }).unwrap();
        // fixmap of 1 entry, then the key "name".
        assert_eq!(body[0], 0x81);
        assert_eq!(&body[1..6], b"\xa4name");
    }
}
