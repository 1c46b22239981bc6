//! The request body as Django reads a form: `application/x-www-form-urlencoded`
//! or `multipart/form-data`, fields decoded as UTF-8 with invalid bytes
//! replaced, files by their part's name.

use bytes::Bytes;

/// A parsed form: fields and files in the order sent (a repeated name:
/// the last one wins, as with Django's `QueryDict.get` and
/// `MultiValueDict.items()`).
#[derive(Debug, Default)]
pub struct Form {
    /// (name, value) of each field.
    pub fields: Vec<(String, String)>,
    /// (part name, contents) of each uploaded file.
    pub files: Vec<(String, Bytes)>,
}

impl Form {
    /// The last value of a field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Each file name once, with its last contents, in order of first
    /// appearance.
    pub fn unique_files(&self) -> Vec<(String, Bytes)> {
        let mut out: Vec<(String, Bytes)> = Vec::new();
        for (name, data) in &self.files {
            match out.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = data.clone(),
                None => out.push((name.clone(), data.clone())),
            }
        }
        out
    }
}

/// Why a body is not a form this service takes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormError {
    /// Neither form type (DRF: 415).
    #[error("Unsupported media type \"{0}\" in request.")]
    UnsupportedMediaType(String),
    /// A multipart body that does not parse (DRF: 400).
    #[error("Multipart form parse error - {0}")]
    Multipart(String),
    /// Form fields larger than the cap (Django: `RequestDataTooBig`).
    #[error("Request body exceeded the {0}-byte limit for form fields")]
    FieldsTooBig(u64),
    /// One file larger than the cap.
    #[error("Uploaded file '{name}' exceeded the {limit}-byte limit")]
    FileTooBig {
        /// The part's name.
        name: String,
        /// The cap.
        limit: u64,
    },
    /// More fields or files than Django accepts (1000 fields, 100 files).
    #[error("The number of {what} exceeded the limit of {limit}")]
    TooMany {
        /// `fields` or `files`.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
}

/// Django's `DATA_UPLOAD_MAX_NUMBER_FIELDS`.
const MAX_FIELDS: usize = 1000;
/// Django's `DATA_UPLOAD_MAX_NUMBER_FILES`.
const MAX_FILES: usize = 100;

/// The media type of a `Content-Type` value, lower case, without
/// parameters.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Parses `body` as the form `content_type` says it is; caps in bytes.
///
/// # Errors
/// [`FormError`].
pub async fn parse(
    content_type: &str,
    body: Bytes,
    max_fields_bytes: u64,
    max_file_bytes: u64,
) -> Result<Form, FormError> {
    match media_type(content_type).as_str() {
        "application/x-www-form-urlencoded" => urlencoded(&body),
        "multipart/form-data" => {
            multipart(content_type, body, max_fields_bytes, max_file_bytes).await
        }
        _ => Err(FormError::UnsupportedMediaType(content_type.to_owned())),
    }
}

/// A form-encoded body: no cap on its fields but the body's own, as in
/// codejail-service, whose form-encoded bodies DRF's `FormParser` reads
/// from the stream, out of reach of Django's `DATA_UPLOAD_MAX_MEMORY_SIZE`
/// (edx-platform sends its payload so whenever it has no file).
fn urlencoded(body: &[u8]) -> Result<Form, FormError> {
    let fields: Vec<(String, String)> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if fields.len() > MAX_FIELDS {
        return Err(FormError::TooMany {
            what: "fields",
            limit: MAX_FIELDS,
        });
    }
    Ok(Form {
        fields,
        files: Vec::new(),
    })
}

async fn multipart(
    content_type: &str,
    body: Bytes,
    max_fields_bytes: u64,
    max_file_bytes: u64,
) -> Result<Form, FormError> {
    let bad = |e: multer::Error| FormError::Multipart(e.to_string());
    let boundary = multer::parse_boundary(content_type).map_err(bad)?;
    let stream =
        futures_util::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(body) });
    let mut parts = multer::Multipart::new(stream, boundary);
    let mut form = Form::default();
    let mut fields_bytes = 0u64;
    while let Some(field) = parts.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_owned();
        // Django: a part with a non-empty file name is a file; an empty
        // file name is skipped.
        let file_name = field.file_name().map(str::to_owned);
        let data = field.bytes().await.map_err(bad)?;
        match file_name {
            Some(f) if f.is_empty() => {}
            Some(_) => {
                if data.len() as u64 > max_file_bytes {
                    return Err(FormError::FileTooBig {
                        name,
                        limit: max_file_bytes,
                    });
                }
                form.files.push((name, data));
                if form.files.len() > MAX_FILES {
                    return Err(FormError::TooMany {
                        what: "files",
                        limit: MAX_FILES,
                    });
                }
            }
            None => {
                // Django counts each field's name and value, and two more
                // bytes (a form-encoded body's `=` and `&`).
                fields_bytes += (name.len() + data.len() + 2) as u64;
                if fields_bytes > max_fields_bytes {
                    return Err(FormError::FieldsTooBig(max_fields_bytes));
                }
                form.fields
                    .push((name, String::from_utf8_lossy(&data).into_owned()));
                if form.fields.len() > MAX_FIELDS {
                    return Err(FormError::TooMany {
                        what: "fields",
                        limit: MAX_FIELDS,
                    });
                }
            }
        }
    }
    Ok(form)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn urlencoded_fields_decode_like_python() {
        let form = run(parse(
            "application/x-www-form-urlencoded; charset=utf-8",
            Bytes::from_static(b"payload=%7B%22a%22%3A+1%7D&x&payload=last%ff&&bad=%zz"),
            1 << 20,
            1 << 20,
        ))
        .unwrap();
        assert_eq!(form.field("payload"), Some("last\u{fffd}"));
        assert_eq!(form.field("x"), Some(""));
        assert_eq!(form.field("bad"), Some("%zz"));
        assert_eq!(form.fields[0].1, "{\"a\": 1}");
        assert!(form.files.is_empty());
    }

    #[test]
    fn multipart_fields_and_files_by_part_name() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"payload\"\r\n\r\n{\"code\": \"x\"}\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"python_lib.zip\"; filename=\"python_lib.zip\"\r\nContent-Type: application/zip\r\n\r\nPK1\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"other\"; filename=\"\"\r\n\r\nskipped\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"python_lib.zip\"; filename=\"x.zip\"\r\n\r\nPK2\r\n--XyZ--\r\n";
        let form = run(parse(
            "multipart/form-data; boundary=XyZ",
            Bytes::from(body),
            1 << 20,
            1 << 20,
        ))
        .unwrap();
        assert_eq!(form.field("payload"), Some("{\"code\": \"x\"}"));
        let files = form.unique_files();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, "python_lib.zip");
        assert_eq!(&files[0].1[..], b"PK2");
    }

    #[test]
    fn caps_and_bad_bodies_are_refused() {
        let err = run(parse("application/json", Bytes::new(), 10, 10)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Unsupported media type \"application/json\" in request."
        );
        // A form-encoded body's fields have no cap of their own.
        let form = run(parse(
            "application/x-www-form-urlencoded",
            Bytes::from(vec![b'a'; 11]),
            10,
            10,
        ))
        .unwrap();
        assert_eq!(form.fields, [("a".repeat(11), String::new())]);
        // A multipart field counts its name, its value and two bytes.
        let field = |value: &str| {
            format!("--B\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n{value}\r\n--B--\r\n")
        };
        let parsed = |value: &str| {
            run(parse(
                "multipart/form-data; boundary=B",
                Bytes::from(field(value)),
                10,
                10,
            ))
        };
        assert!(parsed("1234567").is_ok());
        assert_eq!(parsed("12345678").unwrap_err(), FormError::FieldsTooBig(10));
        let body = "--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f\"\r\n\r\n0123456789A\r\n--B--\r\n";
        let err = run(parse(
            "multipart/form-data; boundary=B",
            Bytes::from(body),
            100,
            10,
        ))
        .unwrap_err();
        assert!(matches!(err, FormError::FileTooBig { .. }), "{err}");
        let err = run(parse("multipart/form-data", Bytes::from(body), 100, 100)).unwrap_err();
        assert!(matches!(err, FormError::Multipart(_)), "{err}");
        let err = run(parse(
            "multipart/form-data; boundary=B",
            Bytes::from_static(
                b"--B\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nunterminated",
            ),
            100,
            100,
        ))
        .unwrap_err();
        assert!(matches!(err, FormError::Multipart(_)), "{err}");
    }

    #[test]
    fn no_body_panics() {
        let pieces: [&[u8]; 10] = [
            b"--B",
            b"\r\n",
            b"Content-Disposition: form-data; name=\"payload\"",
            b"; filename=\"f\"",
            b"\r\n\r\n",
            b"{}",
            b"--B--",
            b"\xff\xfe",
            b"%zz&=",
            b"name*=utf-8''x",
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        for _ in 0..3000 {
            let body: Vec<u8> = (0..next(12))
                .flat_map(|_| pieces[next(pieces.len())].to_vec())
                .collect();
            for ct in [
                "multipart/form-data; boundary=B",
                "application/x-www-form-urlencoded",
            ] {
                let _ = run(parse(ct, Bytes::from(body.clone()), 64, 64));
            }
        }
    }
}
