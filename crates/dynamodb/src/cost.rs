//! DynamoDB's published capacity rules, and a recorder of real requests.
//!
//! Item size: the sum over attributes of the name's UTF-8 length plus the
//! value's size (strings: UTF-8 length; binaries: length; numbers: about one
//! byte per two significant digits plus one; booleans and nulls: one; lists
//! and maps: three plus, per element, one plus its size — map elements
//! count their names too; sets: the sum of their elements).
//!
//! Capacity: a write costs one WCU per started KB of the larger of the old
//! and the new item (at least 1), twice that inside a transaction; a failed
//! conditional write still costs the existing item's size; a strongly
//! consistent read costs one RCU per started 4 KB (a query sums the items
//! it returns). The design has no secondary index, so no index writes.
//!
//! [`Recorder`] is an SDK interceptor: it records each request's operation
//! and the items it wrote or read, from the request's input and output, and
//! keeps the last known size of every item so that updates are charged the
//! larger of old and new.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemInput;
use aws_sdk_dynamodb::operation::get_item::{GetItemInput, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
use aws_sdk_dynamodb::operation::transact_get_items::{
    TransactGetItemsInput, TransactGetItemsOutput,
};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::operation::update_item::{
    UpdateItemError, UpdateItemInput, UpdateItemOutput,
};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

type Item = HashMap<String, AttributeValue>;

/// Bytes a number takes: one per two significant digits, plus one.
fn number_size(text: &str) -> usize {
    let digits: String = text.chars().filter(|c| c.is_ascii_digit()).collect();
    let trimmed = digits.trim_start_matches('0');
    let trimmed = trimmed.trim_end_matches('0');
    trimmed.len().div_ceil(2) + 1
}

/// Size of one attribute value by DynamoDB's rules.
pub fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(l) => 3 + l.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
        AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
        AttributeValue::Ns(s) => s.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(s) => s.iter().map(|b| b.as_ref().len()).sum(),
        _ => 0,
    }
}

/// Size of an item: attribute names plus values.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// WCU of writing an item whose larger image is `bytes`.
pub fn wcu(bytes: usize) -> u64 {
    (bytes.div_ceil(1024) as u64).max(1)
}

/// RCU of a strongly consistent read of `bytes`.
pub fn rcu(bytes: usize) -> u64 {
    (bytes.div_ceil(4096) as u64).max(1)
}

/// One request as recorded.
#[derive(Debug, Clone, Default)]
pub struct RecordedRequest {
    /// The operation, e.g. `UpdateItem`.
    pub operation: &'static str,
    /// Whether it succeeded.
    pub succeeded: bool,
    /// Write capacity it consumed by the rules above.
    pub wcu: u64,
    /// Read capacity it consumed by the rules above.
    pub rcu: u64,
    /// Sizes of the items it wrote (the larger image each).
    pub written_sizes: Vec<usize>,
}

#[derive(Debug, Default)]
struct State {
    requests: Vec<RecordedRequest>,
    sizes: HashMap<String, usize>,
    pending: HashMap<u64, Pending>,
    next: u64,
}

#[derive(Debug)]
enum Pending {
    Update(String),
    Put(String, usize),
    Delete(String),
    Transact(Vec<(String, Option<usize>)>),
    Batch(Vec<(String, Option<usize>)>),
    Read,
}

#[derive(Debug, Clone)]
struct RequestId(u64);
impl Storable for RequestId {
    type Storer = StoreReplace<Self>;
}

/// Records every DynamoDB request of the clients it is attached to.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    state: Arc<Mutex<State>>,
}

fn key_text(table: Option<&str>, key: &Item) -> String {
    let part = |k: &str| match key.get(k) {
        Some(AttributeValue::S(s)) => s.clone(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    format!(
        "{}/{}/{}",
        table.unwrap_or(""),
        part(crate::items::PK),
        part(crate::items::SK)
    )
}

fn key_of(table: Option<&str>, item: &Item) -> String {
    key_text(table, item)
}

impl Recorder {
    /// A fresh recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The requests recorded so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().expect("poisoned").requests.clone()
    }

    /// Forgets the requests (item sizes are kept).
    pub fn clear(&self) {
        self.state.lock().expect("poisoned").requests.clear();
    }

    /// Tells the recorder an item's current size (for items written by a
    /// request whose output does not show them, e.g. an update inside a
    /// transaction), and charges the difference to the last request that
    /// wrote it without a known size.
    pub fn observe(&self, table: &str, item: &Item) {
        let key = key_of(Some(table), item);
        let size = item_size(item);
        let mut st = self.state.lock().expect("poisoned");
        let old = st.sizes.insert(key, size).unwrap_or(0);
        if let Some(last) = st.requests.last_mut()
            && last.operation == "TransactWriteItems"
            && size > old
        {
            // Re-charge the transaction's unknown update at the new size.
            last.written_sizes.push(size);
            last.wcu += 2 * wcu(size.max(old)) - 2;
        }
    }

    fn begin(&self, pending: Pending) -> u64 {
        let mut st = self.state.lock().expect("poisoned");
        st.next += 1;
        let id = st.next;
        st.pending.insert(id, pending);
        id
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "CostRecorder"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input();
        let pending = if let Some(i) = input.downcast_ref::<UpdateItemInput>() {
            Pending::Update(key_text(i.table_name(), i.key().unwrap_or(&Item::new())))
        } else if let Some(i) = input.downcast_ref::<PutItemInput>() {
            let item = i.item().cloned().unwrap_or_default();
            Pending::Put(key_of(i.table_name(), &item), item_size(&item))
        } else if let Some(i) = input.downcast_ref::<DeleteItemInput>() {
            Pending::Delete(key_text(i.table_name(), i.key().unwrap_or(&Item::new())))
        } else if let Some(i) = input.downcast_ref::<TransactWriteItemsInput>() {
            let mut writes = Vec::new();
            for t in i.transact_items() {
                if let Some(p) = t.put() {
                    writes.push((
                        key_of(Some(p.table_name()), p.item()),
                        Some(item_size(p.item())),
                    ));
                } else if let Some(u) = t.update() {
                    writes.push((key_text(Some(u.table_name()), u.key()), None));
                } else if let Some(d) = t.delete() {
                    writes.push((key_text(Some(d.table_name()), d.key()), Some(0)));
                } else if let Some(c) = t.condition_check() {
                    writes.push((key_text(Some(c.table_name()), c.key()), Some(0)));
                }
            }
            Pending::Transact(writes)
        } else if let Some(i) = input.downcast_ref::<BatchWriteItemInput>() {
            let mut writes = Vec::new();
            for (table, reqs) in i.request_items().into_iter().flatten() {
                for r in reqs {
                    if let Some(p) = r.put_request() {
                        writes.push((key_of(Some(table), p.item()), Some(item_size(p.item()))));
                    } else if let Some(d) = r.delete_request() {
                        writes.push((key_text(Some(table), d.key()), None));
                    }
                }
            }
            Pending::Batch(writes)
        } else if input.downcast_ref::<GetItemInput>().is_some()
            || input.downcast_ref::<QueryInput>().is_some()
            || input.downcast_ref::<TransactGetItemsInput>().is_some()
        {
            Pending::Read
        } else {
            return Ok(());
        };
        let id = self.begin(pending);
        cfg.interceptor_state().store_put(RequestId(id));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(RequestId(id)) = cfg.load::<RequestId>().cloned() else {
            return Ok(());
        };
        let mut st = self.state.lock().expect("poisoned");
        let Some(pending) = st.pending.remove(&id) else {
            return Ok(());
        };
        let result = context.output_or_error();
        let output = result.and_then(|r| r.ok());
        let succeeded = output.is_some();
        let mut req = RecordedRequest {
            succeeded,
            ..Default::default()
        };
        match pending {
            Pending::Update(key) => {
                req.operation = "UpdateItem";
                let old = st.sizes.get(&key).copied().unwrap_or(0);
                if let Some(out) = output.and_then(|o| o.downcast_ref::<UpdateItemOutput>()) {
                    let new = out.attributes().map(item_size).unwrap_or(old);
                    st.sizes.insert(key, new);
                    req.written_sizes.push(new.max(old));
                    req.wcu = wcu(new.max(old));
                } else {
                    // A failed condition is charged the existing item's size.
                    let err = result
                        .and_then(|r| r.err())
                        .and_then(|e| e.as_operation_error())
                        .and_then(|e| e.downcast_ref::<UpdateItemError>());
                    let existing = match err {
                        Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                            c.item().map(item_size).unwrap_or(old)
                        }
                        _ => old,
                    };
                    req.wcu = wcu(existing);
                }
            }
            Pending::Put(key, size) => {
                req.operation = "PutItem";
                let old = st.sizes.get(&key).copied().unwrap_or(0);
                if succeeded {
                    st.sizes.insert(key, size);
                    req.written_sizes.push(size.max(old));
                    req.wcu = wcu(size.max(old));
                } else {
                    req.wcu = wcu(old);
                }
            }
            Pending::Delete(key) => {
                req.operation = "DeleteItem";
                let old = st.sizes.remove(&key).unwrap_or(0);
                req.wcu = wcu(old);
            }
            Pending::Transact(writes) => {
                req.operation = "TransactWriteItems";
                for (key, size) in writes {
                    let old = st.sizes.get(&key).copied().unwrap_or(0);
                    let new = size.unwrap_or(old);
                    if succeeded && size.is_some() {
                        st.sizes.insert(key, new);
                    }
                    req.written_sizes.push(new.max(old));
                    req.wcu += 2 * wcu(new.max(old));
                }
            }
            Pending::Batch(writes) => {
                req.operation = "BatchWriteItem";
                for (key, size) in writes {
                    let old = st.sizes.get(&key).copied().unwrap_or(0);
                    match size {
                        Some(new) => {
                            st.sizes.insert(key, new);
                            req.written_sizes.push(new.max(old));
                            req.wcu += wcu(new.max(old));
                        }
                        None => {
                            st.sizes.remove(&key);
                            req.wcu += wcu(old);
                        }
                    }
                }
            }
            Pending::Read => {
                if let Some(out) = output.and_then(|o| o.downcast_ref::<GetItemOutput>()) {
                    req.operation = "GetItem";
                    req.rcu = rcu(out.item().map(item_size).unwrap_or(0));
                } else if let Some(out) = output.and_then(|o| o.downcast_ref::<QueryOutput>()) {
                    req.operation = "Query";
                    req.rcu = rcu(out.items().iter().map(item_size).sum());
                } else if let Some(out) =
                    output.and_then(|o| o.downcast_ref::<TransactGetItemsOutput>())
                {
                    // A transactional read costs twice a consistent one,
                    // per item (at least one unit each, found or not).
                    req.operation = "TransactGetItems";
                    req.rcu = out
                        .responses()
                        .iter()
                        .map(|r| 2 * rcu(r.item().map(item_size).unwrap_or(0)))
                        .sum();
                } else {
                    req.operation = "Read";
                    req.rcu = 1;
                }
            }
        }
        st.requests.push(req);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_published_rules() {
        assert_eq!(number_size("0"), 1);
        assert_eq!(number_size("12345"), 4);
        assert_eq!(number_size("1000"), 2);
        use crate::items::{PK, attr};
        let item: Item = HashMap::from([
            (PK.to_string(), AttributeValue::S("abc".into())),
            (
                attr::tip::LAST_COUNT.to_string(),
                AttributeValue::N("42".into()),
            ),
            (
                attr::chunk::LAST.to_string(),
                AttributeValue::L(vec![AttributeValue::B(
                    aws_sdk_dynamodb::primitives::Blob::new(vec![0u8; 10]),
                )]),
            ),
        ]);
        // Each name is one byte. The key: 1 + 3; the number: 1 + 2; the
        // list: 1 + 3 + (1 + 10).
        assert_eq!(item_size(&item), 4 + 3 + 15);
        assert_eq!(wcu(0), 1);
        assert_eq!(wcu(1024), 1);
        assert_eq!(wcu(1025), 2);
        assert_eq!(rcu(4097), 2);
    }
}
