//! A reader of the global feed for the benches: pages of 1,000 from random
//! positions, each page parsed as a typed consumer parses it and checked.
//! It reads one page at a time, or asks for the next page (named by the
//! answer's `Link` header) before it parses the current one.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use eventstore_api::{FeedPage, FeedPageEnvelope};

/// Pages read from each random position.
const PAGES_PER_POSITION: usize = 10;
/// Events per page.
const PAGE: usize = 1000;

/// A stretch of the feed read.
pub struct FeedRead {
    pub events: u64,
    pub elapsed: Duration,
}

impl FeedRead {
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// The global feed's reader: its server and key.
#[derive(Clone)]
pub struct FeedReader {
    pub http: reqwest::Client,
    /// The server's base URL, without a trailing `/`.
    pub url: String,
    pub api_key: Option<String>,
}

/// A well-mixed 64-bit function of `x` (SplitMix64's finaliser).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl FeedReader {
    fn page_url(&self, after: u64) -> String {
        format!("{}/events?after-position={after}&limit={PAGE}", self.url)
    }

    async fn send(&self, after: u64) -> anyhow::Result<reqwest::Response> {
        let url = self.page_url(after);
        let mut rb = self.http.get(&url);
        if let Some(k) = &self.api_key {
            rb = rb.bearer_auth(k);
        }
        let r = rb.send().await.context("feed request")?;
        if !r.status().is_success() {
            bail!("GET {url} answered {}", r.status());
        }
        Ok(r)
    }

    /// The position of the feed's last event: the first position whose
    /// page is empty, found by doubling and bisecting.
    pub async fn head(&self) -> anyhow::Result<u64> {
        let empty_after = |after: u64| async move {
            let r = self.send(after).await?;
            let page = parse(r, after).await?;
            anyhow::Ok(page.events.is_empty())
        };
        if empty_after(0).await? {
            return Ok(0);
        }
        let mut hi = 1u64;
        while !empty_after(hi).await? {
            hi = hi.checked_mul(2).context("the feed's head is beyond u64")?;
        }
        let mut lo = hi / 2; // its page is not empty
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if empty_after(mid).await? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Ok(hi)
    }

    /// Reads about `total` events: from random positions below `head`
    /// (drawn from `seed`), ten pages of 1,000 from each. With `prefetch`
    /// the next page is asked for as soon as the current one's headers
    /// arrive, and parsed after it.
    pub async fn read(
        &self,
        head: u64,
        total: u64,
        seed: u64,
        prefetch: bool,
    ) -> anyhow::Result<FeedRead> {
        let span = head
            .saturating_sub((PAGE * PAGES_PER_POSITION) as u64)
            .max(1);
        let mut read = 0u64;
        let mut k = 0u64;
        let started = Instant::now();
        while read < total.min(head) {
            let mut after = mix(k ^ seed) % span;
            k += 1;
            let mut answer = self.send(after).await?;
            for i in 0..PAGES_PER_POSITION {
                let next = if prefetch && i + 1 < PAGES_PER_POSITION {
                    let next_after = link_after(&answer)?;
                    let reader = self.clone();
                    Some((
                        next_after,
                        tokio::spawn(async move { reader.send(next_after).await }),
                    ))
                } else {
                    None
                };
                let page = parse(answer, after).await?;
                let n = page.events.len();
                read += n as u64;
                let last = page.last_position.get();
                if n < PAGE || i + 1 == PAGES_PER_POSITION {
                    if let Some((_, task)) = next {
                        task.abort();
                    }
                    break;
                }
                answer = match next {
                    Some((next_after, task)) => {
                        if next_after != last {
                            bail!(
                                "the Link header named position {next_after}, the page ended at {last}"
                            );
                        }
                        task.await??
                    }
                    None => self.send(last).await?,
                };
                after = last;
            }
        }
        Ok(FeedRead {
            events: read,
            elapsed: started.elapsed(),
        })
    }
}

/// The `after-position` of the next page the answer's `Link` header names.
fn link_after(answer: &reqwest::Response) -> anyhow::Result<u64> {
    let link = answer
        .headers()
        .get(reqwest::header::LINK)
        .and_then(|v| v.to_str().ok())
        .context("a feed page without a Link header")?;
    let (_, rest) = link
        .split_once("after-position=")
        .context("a Link header without after-position")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits
        .parse()
        .with_context(|| format!("the Link header {link:?}"))
}

/// The page, parsed as a typed consumer parses it (each event's fields
/// checked, payloads kept as their JSON text), and checked: positions
/// after `after`, strictly increasing, the last one reported as the page's
/// `lastPosition`.
async fn parse(answer: reqwest::Response, after: u64) -> anyhow::Result<FeedPage> {
    let url = answer.url().to_string();
    let page = serde_json::from_slice::<FeedPageEnvelope>(&answer.bytes().await?)
        .with_context(|| format!("GET {url}: not a feed page"))?
        .event_page;
    let mut previous = after;
    for e in &page.events {
        let position = e.position.map_or(0, |p| p.get());
        if position <= previous {
            bail!("GET {url}: position {position} after {previous}");
        }
        previous = position;
    }
    if !page.events.is_empty() && page.last_position.get() != previous {
        bail!(
            "GET {url}: lastPosition {} but the last event is at {previous}",
            page.last_position.get()
        );
    }
    Ok(page)
}
