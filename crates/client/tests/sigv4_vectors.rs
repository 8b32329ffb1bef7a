//! The SigV4 signer reproduces AWS's published test vectors byte for byte.

use std::path::Path;
use std::time::SystemTime;

use eventstore_client::{Credentials, SigV4Signer};

struct Vector {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    context: serde_json::Value,
    expected_authorization: String,
}

fn load(name: &str) -> Vector {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sigv4")
        .join(name);
    let request = std::fs::read_to_string(dir.join("request.txt")).unwrap();
    let (head, body) = request.split_once("\n\n").unwrap_or((request.as_str(), ""));
    let mut lines = head.lines();
    let request_line = lines.next().unwrap();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap().to_owned();
    let path = parts.next().unwrap().to_owned();
    let mut host = String::new();
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line.split_once(':').unwrap();
        if k.eq_ignore_ascii_case("host") {
            host = v.to_owned();
        } else {
            headers.push((k.to_owned(), v.to_owned()));
        }
    }
    let content_length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse::<usize>().unwrap())
        .unwrap_or(0);
    let body = body.as_bytes()[..content_length].to_vec();
    let context: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("context.json")).unwrap()).unwrap();
    let signed = std::fs::read_to_string(dir.join("header-signed-request.txt")).unwrap();
    let expected_authorization = signed
        .lines()
        .find_map(|l| l.strip_prefix("Authorization:"))
        .unwrap()
        .to_owned();
    Vector {
        method,
        url: format!("https://{host}{path}"),
        headers,
        body,
        context,
        expected_authorization,
    }
}

fn sign(v: &Vector) -> String {
    let creds = &v.context["credentials"];
    let credentials = Credentials::new(
        creds["access_key_id"].as_str().unwrap(),
        creds["secret_access_key"].as_str().unwrap(),
        creds["token"].as_str().map(str::to_owned),
        None,
        "test-vector",
    );
    let time: SystemTime = chrono_free_parse(v.context["timestamp"].as_str().unwrap());
    let signer =
        SigV4Signer::with_credentials(credentials.clone(), v.context["region"].as_str().unwrap())
            .service(v.context["service"].as_str().unwrap())
            .payload_hash_header(v.context["sign_body"].as_bool().unwrap());
    let http = reqwest::Client::new();
    let mut builder = http.request(v.method.parse().unwrap(), &v.url);
    for (k, val) in &v.headers {
        builder = builder.header(k.as_str(), val.as_str());
    }
    if !v.body.is_empty() {
        builder = builder.body(v.body.clone());
    }
    let mut request = builder.build().unwrap();
    signer.sign_with(&mut request, credentials, time).unwrap();
    request.headers()["authorization"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// `2015-08-30T12:36:00Z` without pulling in a date crate.
fn chrono_free_parse(ts: &str) -> SystemTime {
    let (date, time) = ts.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let t: Vec<i64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m, day) = (if d[1] <= 2 { d[0] - 1 } else { d[0] }, d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
}

macro_rules! vectors {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            let v = load($name);
            assert_eq!(sign(&v), v.expected_authorization, "vector {}", $name);
        }
    )*};
}

vectors! {
    get_vanilla => "get-vanilla",
    get_vanilla_query => "get-vanilla-query",
    get_vanilla_query_order_key_case => "get-vanilla-query-order-key-case",
    get_vanilla_query_unreserved => "get-vanilla-query-unreserved",
    get_vanilla_with_session_token => "get-vanilla-with-session-token",
    get_unreserved => "get-unreserved",
    post_vanilla => "post-vanilla",
    post_vanilla_query => "post-vanilla-query",
    post_header_key_sort => "post-header-key-sort",
    post_header_value_case => "post-header-value-case",
    post_x_www_form_urlencoded => "post-x-www-form-urlencoded",
    post_x_www_form_urlencoded_parameters => "post-x-www-form-urlencoded-parameters",
}

#[test]
fn timestamp_helper_is_right() {
    assert_eq!(
        chrono_free_parse("2015-08-30T12:36:00Z")
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        1_440_938_160
    );
}
