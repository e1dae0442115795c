//! seed_rust_http: the seed's Rust HTTP ingress rebuilt as a benchmark peer.
//!
//! The original student stack took `POST /rust/insert` in Rust and produced to Kafka. This peer
//! does the same work per vote as our Serve ingress, so the bench compares like with like:
//! the contract's validation (docs/contract.md, serve_app/domain/votes.py), the same Kafka
//! record bytes (`encode_record`), the same producer guarantees (`producer_config`), and a 202
//! only once Kafka acknowledged every record of the request.
//!
//!     seed_rust_http --listen 127.0.0.1:20050 --bootstrap 127.0.0.1:9092 --topic votes-bench

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use std::{env, process};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use serde::Serialize;
use serde_json::{json, Value};

// The contract's limits (serve_app/domain/votes.py, serve_app/ingress/limits.py).
const TEXT_MAX_CHARS: usize = 200;
const YEAR_RANGE: (i64, i64) = (1900, 2100);
const RANK_RANGE: (i64, i64) = (1, 100);
const BATCH_MAX_VOTES: usize = 1000;
const MAX_BODY_BYTES: usize = 1024 * 1024;
const RECORD_SCHEMA: &str = "votes.v1.VoteRecord/1";
// A 1 MiB body of unknown keys must not become a megabyte of error list (write_routes.py).
const ERRORS_LISTED_PER_VOTE: usize = 10;

// The producer settings of serve_app/ingress/producer.py with the default Settings.
const DELIVERY_TIMEOUT_MS: u64 = 5000;
const PRODUCER_QUEUE_MAX: i32 = 100_000;
// Slack over the producer's own message timeout: its delivery error is the better answer.
const AWAIT_SLACK: Duration = Duration::from_secs(1);
const STARTUP_METADATA_TIMEOUT: Duration = Duration::from_secs(5);

const USAGE: &str = "usage: seed_rust_http --listen HOST:PORT [--bootstrap HOST:PORT[,...]] --topic TOPIC
  --listen     address to serve HTTP on, e.g. 127.0.0.1:20050
  --bootstrap  Kafka bootstrap servers (default: $VOTES_KAFKA_BOOTSTRAP_SERVERS, else 127.0.0.1:9092)
  --topic      Kafka topic to produce to (default: $VOTES_KAFKA_TOPIC; required one way or the other)";

// ---- configuration ---------------------------------------------------------------------------

struct Config {
    listen: SocketAddr,
    bootstrap: String,
    topic: String,
}

/// Flags win over the environment; a bad or missing value is an error naming it.
fn parse_config(args: &[String]) -> Result<Config, String> {
    let (mut listen, mut bootstrap, mut topic) = (None, None, None);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_string())),
            None => (arg.as_str(), None),
        };
        let slot = match flag {
            "--listen" => &mut listen,
            "--bootstrap" => &mut bootstrap,
            "--topic" => &mut topic,
            _ => return Err(format!("unknown argument {arg:?}")),
        };
        let value = match inline {
            Some(value) => value,
            None => rest.next().ok_or(format!("{flag} needs a value"))?.clone(),
        };
        *slot = Some(value);
    }
    let listen = listen.ok_or("--listen is required")?;
    let listen = listen
        .parse::<SocketAddr>()
        .map_err(|_| format!("--listen {listen:?} is not HOST:PORT (an IP address and a port)"))?;
    let bootstrap = bootstrap
        .or_else(|| env::var("VOTES_KAFKA_BOOTSTRAP_SERVERS").ok())
        .unwrap_or_else(|| "127.0.0.1:9092".to_string());
    if bootstrap.trim().is_empty() {
        return Err("--bootstrap must not be empty".to_string());
    }
    // No default topic: a peer silently writing into the production topic would skew a run.
    let topic = topic
        .or_else(|| env::var("VOTES_KAFKA_TOPIC").ok())
        .ok_or("--topic (or VOTES_KAFKA_TOPIC) is required")?;
    let topic_ok = (1..=249).contains(&topic.len())
        && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !topic_ok {
        return Err(format!("--topic {topic:?} is not 1-249 of letters, digits, '.', '_', '-'"));
    }
    Ok(Config { listen, bootstrap, topic })
}

// ---- validation (serve_app/domain/votes.py) --------------------------------------------------

struct Vote {
    vote_id: Option<String>,
    name: String,
    album: String,
    year: i64,
    rank: i64,
}

/// One entry of a 422's `detail`, shaped like FastAPI's: where, what, and which kind of error.
#[derive(Serialize)]
struct FieldError {
    loc: Vec<Value>,
    msg: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

fn at(loc: &[Value], field: &str) -> Vec<Value> {
    let mut loc = loc.to_vec();
    loc.push(Value::from(field));
    loc
}

/// Python's str.strip(): Unicode White_Space plus U+001C..U+001F, which Python counts as space.
fn strip_like_python(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// A band or album name: a string, trimmed, 1-200 characters, no control characters.
fn text(value: &Value) -> Result<String, Invalid> {
    let Value::String(raw) = value else {
        return Err(("string_type", "must be a string".into()));
    };
    let text = strip_like_python(raw);
    if text.is_empty() {
        return Err(("string_empty", "must not be empty or only whitespace".into()));
    }
    let chars = text.chars().count();
    if chars > TEXT_MAX_CHARS {
        let msg = format!("must be at most {TEXT_MAX_CHARS} characters after trimming (got {chars})");
        return Err(("string_too_long", msg));
    }
    // Cc only: JSON's lone surrogates (Cs) never get this far, serde_json refuses them.
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        let msg = format!("must not contain control characters (found U+{:04X})", c as u32);
        return Err(("control_character", msg));
    }
    Ok(text.to_string())
}

/// An integer, or a string of 1-9 digits as the original traffic generators send it; in range.
fn whole_number(value: &Value, (low, high): (i64, i64)) -> Result<i64, Invalid> {
    let type_error = || ("int_type", "must be an integer or a string of digits".to_string());
    let number = match value {
        // JSON true is not 1, 2012.0 is not an integer (as in pydantic's strict check).
        Value::Number(n) if n.is_i64() || n.is_u64() => n.as_i64().unwrap_or(i64::MAX),
        Value::String(s) => {
            let digits = strip_like_python(s);
            if !(1..=9).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(type_error());
            }
            digits.parse().map_err(|_| type_error())?
        }
        _ => return Err(type_error()),
    };
    if number < low {
        return Err(("greater_than_equal", format!("Input should be greater than or equal to {low}")));
    }
    if number > high {
        return Err(("less_than_equal", format!("Input should be less than or equal to {high}")));
    }
    Ok(number)
}

/// Our vote_id format: 1-64 of [A-Za-z0-9._:-], starting with a letter or digit.
fn vote_id_ok(id: &str) -> bool {
    let bytes = id.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(b))
}

fn vote_id(value: &Value) -> Result<Option<String>, Invalid> {
    match value {
        Value::Null => Ok(None),
        Value::String(id) if vote_id_ok(id) => Ok(Some(id.clone())),
        Value::String(_) => Err((
            "vote_id_format",
            "must be 1-64 characters of letters, digits, '.', '_', ':' or '-', \
             starting with a letter or digit"
                .into(),
        )),
        _ => Err(("string_type", "must be a string".into())),
    }
}

type Invalid = (&'static str, String);

/// The field's value when valid; otherwise its error is pushed to `found`.
fn check<T>(
    found: &mut Vec<FieldError>,
    loc: &[Value],
    field: &str,
    result: Result<T, Invalid>,
) -> Option<T> {
    result.map_err(|(kind, msg)| found.push(FieldError { loc: at(loc, field), msg, kind })).ok()
}

const VOTE_FIELDS: [&str; 5] = ["name", "album", "year", "rank", "vote_id"];

/// Validate one vote at `loc`; every problem is pushed to `errors` (capped per vote).
fn validate_vote(value: &Value, loc: &[Value], errors: &mut Vec<FieldError>) -> Option<Vote> {
    let Value::Object(fields) = value else {
        let msg = "Input should be a valid dictionary or object".to_string();
        errors.push(FieldError { loc: loc.to_vec(), msg, kind: "model_type" });
        return None;
    };
    let mut found = Vec::new();
    let required = |name: &str| fields.get(name).ok_or(("missing", "Field required".to_string()));
    let name = check(&mut found, loc, "name", required("name").and_then(text));
    let album = check(&mut found, loc, "album", required("album").and_then(text));
    let year = check(&mut found, loc, "year", required("year").and_then(|v| whole_number(v, YEAR_RANGE)));
    let rank = check(&mut found, loc, "rank", required("rank").and_then(|v| whole_number(v, RANK_RANGE)));
    let id = check(&mut found, loc, "vote_id", fields.get("vote_id").map_or(Ok(None), vote_id));
    for key in fields.keys().filter(|key| !VOTE_FIELDS.contains(&key.as_str())) {
        let msg = "Extra inputs are not permitted".into();
        found.push(FieldError { loc: at(loc, key), msg, kind: "extra_forbidden" });
    }
    if found.len() > ERRORS_LISTED_PER_VOTE {
        let more = found.len() - ERRORS_LISTED_PER_VOTE;
        found.truncate(ERRORS_LISTED_PER_VOTE);
        let msg = format!("{more} more errors not listed");
        found.push(FieldError { loc: loc.to_vec(), msg, kind: "too_many_errors" });
    }
    let valid = found.is_empty();
    errors.append(&mut found);
    if !valid {
        return None;
    }
    Some(Vote { vote_id: id?, name: name?, album: album?, year: year?, rank: rank? })
}

/// `{"votes": [...]}` of 1-1000 votes, nothing else. All valid or none.
fn validate_batch(body: &Value, errors: &mut Vec<FieldError>) -> Vec<Vote> {
    let root = [Value::from("body")];
    let Value::Object(fields) = body else {
        let msg = "Input should be a valid dictionary or object".to_string();
        errors.push(FieldError { loc: root.to_vec(), msg, kind: "model_type" });
        return Vec::new();
    };
    for key in fields.keys().filter(|key| *key != "votes") {
        let msg = "Extra inputs are not permitted".into();
        errors.push(FieldError { loc: at(&root, key), msg, kind: "extra_forbidden" });
    }
    let votes_loc = at(&root, "votes");
    let items = match fields.get("votes") {
        None => {
            errors.push(FieldError { loc: votes_loc, msg: "Field required".into(), kind: "missing" });
            return Vec::new();
        }
        Some(Value::Array(items)) => items,
        Some(_) => {
            let msg = "Input should be a valid list".into();
            errors.push(FieldError { loc: votes_loc, msg, kind: "list_type" });
            return Vec::new();
        }
    };
    if items.is_empty() || items.len() > BATCH_MAX_VOTES {
        let (kind, msg) = if items.is_empty() {
            ("too_short", "List should have at least 1 item after validation, not 0".to_string())
        } else {
            let msg = format!("List should have at most {BATCH_MAX_VOTES} items, not {}", items.len());
            ("too_long", msg)
        };
        errors.push(FieldError { loc: votes_loc, msg, kind });
        return Vec::new();
    }
    let votes: Vec<Vote> = items
        .iter()
        .enumerate()
        .filter_map(|(index, item)| {
            let mut loc = votes_loc.clone();
            loc.push(Value::from(index));
            validate_vote(item, &loc, errors)
        })
        .collect();
    if errors.is_empty() {
        votes
    } else {
        Vec::new()
    }
}

// ---- the Kafka record (serve_app/domain/votes.py: encode_record) -----------------------------

/// The record's JSON; serde keeps this field order, which is encode_record's.
#[derive(Serialize)]
struct Record<'a> {
    vote_id: &'a str,
    name: &'a str,
    album: &'a str,
    year: i64,
    rank: i64,
    received_at: &'a str,
    source: &'static str,
}

struct Encoded {
    vote_id: String,
    value: Vec<u8>,
}

fn encode(vote: Vote, received_at: &str) -> Encoded {
    let vote_id = vote.vote_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let record = Record {
        vote_id: &vote_id,
        name: &vote.name,
        album: &vote.album,
        year: vote.year,
        rank: vote.rank,
        received_at,
        source: "http",
    };
    // Compact and non-ASCII kept verbatim, as json.dumps(ensure_ascii=False, separators=(",", ":")).
    let value = serde_json::to_vec(&record).expect("a record of strings and integers serialises");
    Encoded { vote_id, value }
}

/// ISO-8601 in UTC with milliseconds (truncated, as Python's isoformat) and a Z.
fn format_timestamp(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).expect("the clock is after 1970");
    let (days, second_of_day) = ((since.as_secs() / 86_400) as i64, since.as_secs() % 86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (second_of_day / 3600, second_of_day / 60 % 60, second_of_day % 60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{:03}Z", since.subsec_millis())
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`, which
/// saves a date-time crate for one format.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // March = 0
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

// ---- producing -------------------------------------------------------------------------------

struct App {
    producer: FutureProducer,
    topic: String,
    /// `_HEADERS["http"]` of votes.py, built once.
    headers: OwnedHeaders,
}

/// The settings of producer_config(): accepted means every in-sync replica has the record, and
/// a retried send inside the producer cannot write it twice.
fn new_producer(bootstrap: &str) -> Result<FutureProducer, KafkaError> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "seed-rust-http")
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", DELIVERY_TIMEOUT_MS.to_string())
        .set("request.timeout.ms", DELIVERY_TIMEOUT_MS.min(30_000).to_string())
        .set("linger.ms", "2")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", PRODUCER_QUEUE_MAX.to_string())
        .create()
}

/// Fail fast at start: the cluster must answer a metadata request for our topic.
fn check_kafka(producer: &FutureProducer, topic: &str, bootstrap: &str) -> Result<(), String> {
    let metadata = producer.client().fetch_metadata(Some(topic), STARTUP_METADATA_TIMEOUT).map_err(|e| {
        format!("Kafka at {bootstrap} did not answer within {STARTUP_METADATA_TIMEOUT:?}: {e}")
    })?;
    match metadata.topics().iter().find(|t| t.name() == topic) {
        None => Err(format!("Kafka at {bootstrap} knows no topic {topic:?}")),
        Some(t) => match t.error() {
            Some(code) => Err(format!("topic {topic:?}: {}", RDKafkaErrorCode::from(code))),
            None => Ok(()),
        },
    }
}

/// Why a write got a 503: Kafka did not take the records, or would not in time.
struct Unavailable(String);

/// Produce every record and return once Kafka acknowledged all of them (or the first failure).
/// Records of a failed request may still reach Kafka: a client retries with the same vote_ids.
async fn produce(app: &App, records: &[Encoded]) -> Result<(), Unavailable> {
    if let Some((code, reason)) = app.producer.client().fatal_error() {
        // An idempotent producer that hit a fatal error refuses everything: restart the peer.
        return Err(Unavailable(format!("producer hit a fatal error ({code}): {reason}")));
    }
    // All or nothing as far as we can tell up front: do not start a batch the queue cannot hold.
    if app.producer.in_flight_count() + records.len() as i32 > PRODUCER_QUEUE_MAX {
        return Err(Unavailable("producer queue full".into()));
    }
    let mut deliveries = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        let message = FutureRecord::to(&app.topic)
            .key(record.vote_id.as_bytes())
            .payload(&record.value)
            .headers(app.headers.clone());
        match app.producer.send_result(message) {
            Ok(delivery) => deliveries.push(delivery),
            Err((error, _)) => {
                let of = records.len();
                return Err(Unavailable(format!("Kafka refused record {} of {of}: {error}", index + 1)));
            }
        }
    }
    let all_acknowledged = async {
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => return Err(format!("Kafka did not take the record: {error}")),
                Err(_canceled) => return Err("the producer dropped the record".to_string()),
            }
        }
        Ok(())
    };
    let limit = Duration::from_millis(DELIVERY_TIMEOUT_MS) + AWAIT_SLACK;
    match tokio::time::timeout(limit, all_acknowledged).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(reason)) => Err(Unavailable(reason)),
        Err(_elapsed) => Err(Unavailable(format!("no acknowledgement from Kafka within {limit:?}"))),
    }
}

// ---- HTTP ------------------------------------------------------------------------------------

fn detail(status: StatusCode, detail: impl Serialize) -> Response {
    (status, Json(json!({ "detail": detail }))).into_response()
}

fn unavailable(Unavailable(reason): Unavailable) -> Response {
    let mut response = detail(StatusCode::SERVICE_UNAVAILABLE, reason);
    response.headers_mut().insert(header::RETRY_AFTER, "1".parse().expect("a valid header value"));
    response
}

/// The body as JSON, or the answer to give instead: 415 without a JSON Content-Type (as
/// serve_app/ingress/limits.py), 422 when it does not parse.
// The error is the answer itself: large, but built only for a rejected request.
#[allow(clippy::result_large_err)]
fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, Response> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let is_json = media_type == "application/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"));
    if !is_json {
        let reason = format!("Content-Type must be application/json, not {content_type:?}");
        return Err(detail(StatusCode::UNSUPPORTED_MEDIA_TYPE, reason));
    }
    serde_json::from_slice(body).map_err(|e| {
        let error =
            json!({"loc": ["body"], "msg": format!("JSON decode error: {e}"), "type": "json_invalid"});
        detail(StatusCode::UNPROCESSABLE_ENTITY, [error])
    })
}

async fn cast(State(app): State<&'static App>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match json_body(&headers, &body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mut errors = Vec::new();
    let Some(vote) = validate_vote(&body, &[Value::from("body")], &mut errors) else {
        return detail(StatusCode::UNPROCESSABLE_ENTITY, errors);
    };
    let record = encode(vote, &format_timestamp(SystemTime::now()));
    if let Err(failure) = produce(app, std::slice::from_ref(&record)).await {
        return unavailable(failure);
    }
    let reply = json!({"vote_id": record.vote_id, "status": "accepted"});
    (StatusCode::ACCEPTED, Json(reply)).into_response()
}

async fn cast_batch(State(app): State<&'static App>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match json_body(&headers, &body) {
        Ok(body) => body,
        Err(response) => return response,
    };
    let mut errors = Vec::new();
    let votes = validate_batch(&body, &mut errors);
    if !errors.is_empty() {
        return detail(StatusCode::UNPROCESSABLE_ENTITY, errors);
    }
    // One received_at for the whole batch: it arrived at one moment.
    let received_at = format_timestamp(SystemTime::now());
    let records: Vec<Encoded> = votes.into_iter().map(|vote| encode(vote, &received_at)).collect();
    if let Err(failure) = produce(app, &records).await {
        return unavailable(failure);
    }
    let vote_ids: Vec<&str> = records.iter().map(|r| r.vote_id.as_str()).collect();
    let reply = json!({"accepted": records.len(), "vote_ids": vote_ids});
    (StatusCode::ACCEPTED, Json(reply)).into_response()
}

async fn healthz() -> Response {
    (StatusCode::OK, Json(json!({"ok": true}))).into_response()
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

fn fail(message: &str, code: i32) -> ! {
    eprintln!("seed_rust_http: {message}");
    process::exit(code);
}

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return;
    }
    let config = parse_config(&args).unwrap_or_else(|e| fail(&format!("{e}\n{USAGE}"), 2));
    let producer = new_producer(&config.bootstrap)
        .unwrap_or_else(|e| fail(&format!("cannot create the Kafka producer: {e}"), 1));
    if let Err(reason) = check_kafka(&producer, &config.topic, &config.bootstrap) {
        fail(&reason, 1);
    }
    let headers = OwnedHeaders::new()
        .insert(Header { key: "content-type", value: Some("application/json") })
        .insert(Header { key: "schema", value: Some(RECORD_SCHEMA) })
        .insert(Header { key: "source", value: Some("http") });
    // Lives as long as the process: handlers borrow it without reference counting.
    let app: &'static App = Box::leak(Box::new(App { producer, topic: config.topic, headers }));

    let router = Router::new()
        .route("/rust/insert", post(cast))
        .route("/insert", post(cast))
        .route("/votes", post(cast))
        .route("/votes/batch", post(cast_batch))
        .route("/healthz", get(healthz))
        // Over the limit: axum answers 413 before the handler runs.
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(app);

    // Worker threads default to the number of cores.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("cannot start the tokio runtime: {e}"), 1));
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .unwrap_or_else(|e| fail(&format!("cannot listen on {}: {e}", config.listen), 1));
        let bound = listener.local_addr().expect("a bound listener has an address");
        println!("seed_rust_http listening on {bound}");
        std::io::stdout().flush().expect("stdout is writable");
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .unwrap_or_else(|e| fail(&format!("server error: {e}"), 1));
    });
    // Deliver what is still queued (bounded), as VoteProducer.close() does.
    if app.producer.flush(Duration::from_secs(5)).is_err() {
        eprintln!("seed_rust_http: closed with {} undelivered records", app.producer.in_flight_count());
    }
}

// Run with `cargo test --release --locked` (reuses the release build of librdkafka). The byte-for-byte
// check against Python's encode_record is manual: README.md.
#[cfg(test)]
mod tests {
    use super::*;

    fn vote_errors(body: Value) -> Vec<String> {
        let mut errors = Vec::new();
        validate_vote(&body, &[Value::from("body")], &mut errors);
        errors.iter().map(|e| format!("{}:{}", e.loc.last().unwrap(), e.kind)).collect()
    }

    #[test]
    fn timestamps_are_utc_milliseconds_with_z() {
        let at = |ms: u64| format_timestamp(UNIX_EPOCH + Duration::from_millis(ms));
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
        // Truncated, not rounded, as Python's isoformat(timespec="milliseconds").
        assert_eq!(format_timestamp(UNIX_EPOCH + Duration::from_micros(1_999)), "1970-01-01T00:00:00.001Z");
    }

    #[test]
    fn a_vote_of_strings_becomes_the_record_of_encode_record() {
        let body = json!({"name": " Malacates Trebol Shop ", "album": "Pan", "year": "2012", "rank": "1",
                          "vote_id": "v-1"});
        let vote = validate_vote(&body, &[], &mut Vec::new()).unwrap();
        let record = encode(vote, "2026-01-02T03:04:05.006Z");
        let expected = concat!(
            r#"{"vote_id":"v-1","name":"Malacates Trebol Shop","album":"Pan","year":2012,"rank":1,"#,
            r#""received_at":"2026-01-02T03:04:05.006Z","source":"http"}"#
        );
        assert_eq!(String::from_utf8(record.value).unwrap(), expected);
    }

    #[test]
    fn invalid_fields_are_named() {
        let body = json!({"name": "\u{1c} \u{1f}", "album": "a\u{7}", "year": true, "rank": "0",
                          "vote_id": "_x", "other": 1});
        assert_eq!(
            vote_errors(body),
            [
                "\"name\":string_empty",
                "\"album\":control_character",
                "\"year\":int_type",
                "\"rank\":greater_than_equal",
                "\"vote_id\":vote_id_format",
                "\"other\":extra_forbidden"
            ]
        );
        assert_eq!(
            vote_errors(json!({"name": "n", "album": "a", "year": 2012.0, "rank": 101})),
            ["\"year\":int_type", "\"rank\":less_than_equal"]
        );
        assert_eq!(
            vote_errors(json!({"name": "n", "album": "a", "year": "1234567890", "rank": 1})),
            ["\"year\":int_type"]
        );
        assert!(vote_errors(
            json!({"name": "n", "album": "a", "year": 1900, "rank": " 100 ", "vote_id": null})
        )
        .is_empty());
    }

    #[test]
    fn a_batch_with_one_bad_vote_is_refused_whole() {
        let good = json!({"name": "n", "album": "a", "year": 2000, "rank": 1});
        let mut errors = Vec::new();
        let votes = validate_batch(&json!({"votes": [good, {"name": "n"}]}), &mut errors);
        assert!(votes.is_empty());
        assert_eq!(errors[0].loc, [json!("body"), json!("votes"), json!(1), json!("album")]);
    }
}
