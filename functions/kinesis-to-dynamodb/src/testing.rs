//! In-memory doubles of the ports, for tests and benches (feature
//! `testing`; never in the function's build).

use crate::convert::Item;
use crate::ports::{Order, PutResult, Table, WriteError};
use crate::record::{ARRIVAL_ATTR, POSITION_ATTR, SHARD_ATTR};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// xorshift64*: deterministic faults without a rand dependency.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// A DynamoDB table in memory, keyed as the function's table (`keys`) or
/// the rejects table, with the faults a test chooses: random throttling
/// and unprocessed items, listed keys throttled or hung, a broken rejects
/// table, a capacity that runs out.
pub struct InMemoryTable {
    pub keys: Vec<String>,
    pub tables: Mutex<HashMap<String, HashMap<Vec<String>, Item>>>,
    pub rng: Mutex<Rng>,
    pub faults: bool,
    /// Every write to the rejects table fails (access denied).
    pub rejects_broken: bool,
    pub conditional_puts: Mutex<usize>,
    /// Partition keys whose writes are throttled, or hang, while listed.
    pub throttled_keys: Mutex<Vec<String>>,
    pub hung_keys: Mutex<Vec<String>>,
    /// A partition key whose writes wait until the instant.
    pub held_until: Mutex<Option<(String, Instant)>>,
    /// When each write request started.
    pub started: Mutex<Vec<Instant>>,
    /// Items the table still accepts; once none is left, writes hang (a
    /// sustained slow DynamoDB, refilled per invocation by the test).
    pub capacity: Mutex<Option<usize>>,
    /// How often each reject (by record sequence) was stored.
    pub reject_stores: Mutex<HashMap<String, usize>>,
}

impl InMemoryTable {
    pub fn new(keys: &[&str], seed: u64, faults: bool) -> Self {
        Self {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            tables: Mutex::new(HashMap::new()),
            rng: Mutex::new(Rng(seed | 1)),
            faults,
            rejects_broken: false,
            conditional_puts: Mutex::new(0),
            throttled_keys: Mutex::new(Vec::new()),
            hung_keys: Mutex::new(Vec::new()),
            held_until: Mutex::new(None),
            started: Mutex::new(Vec::new()),
            capacity: Mutex::new(None),
            reject_stores: Mutex::new(HashMap::new()),
        }
    }
    fn key(&self, table: &str, item: &Item) -> Vec<String> {
        let names: Vec<&str> = if table == "rejects" {
            vec!["shardId", "position"]
        } else {
            self.keys.iter().map(String::as_str).collect()
        };
        names
            .iter()
            .map(|k| item[*k].as_s().unwrap().clone())
            .collect()
    }
    fn throttled(&self) -> bool {
        self.faults && self.rng.lock().unwrap().chance(5)
    }
    /// What the table does to `item` besides random faults: hangs or
    /// throttles the listed keys, refuses an item with a `refuse` attribute
    /// (as DynamoDB refuses what it finds invalid).
    async fn chosen_fault(&self, item: &Item) -> Result<(), WriteError> {
        let pk = item.get("pk").and_then(|v| v.as_s().ok()).cloned();
        let listed = |keys: &Mutex<Vec<String>>| {
            pk.as_ref()
                .is_some_and(|pk| keys.lock().unwrap().contains(pk))
        };
        let exhausted = match self.capacity.lock().unwrap().as_mut() {
            Some(0) => true,
            Some(left) => {
                *left -= 1;
                false
            }
            None => false,
        };
        if exhausted {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        let held = self.held_until.lock().unwrap().clone();
        if let Some((key, until)) = held
            && pk.as_ref() == Some(&key)
        {
            tokio::time::sleep_until(until).await;
        }
        if listed(&self.hung_keys) {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        if listed(&self.throttled_keys) {
            return Err(WriteError::Transient(
                "ProvisionedThroughputExceededException".into(),
            ));
        }
        if item.contains_key("refuse") {
            return Err(WriteError::ItemRejected(
                "ValidationException: refused by the test".into(),
            ));
        }
        Ok(())
    }
    fn store(&self, table: &str, item: Item) {
        let key = self.key(table, &item);
        if table == "rejects" {
            let sequence = item["sequenceNumber"].as_s().unwrap().clone();
            *self
                .reject_stores
                .lock()
                .unwrap()
                .entry(sequence)
                .or_default() += 1;
        }
        self.tables
            .lock()
            .unwrap()
            .entry(table.to_owned())
            .or_default()
            .insert(key, item);
    }

    pub fn items(&self, table: &str) -> HashMap<Vec<String>, Item> {
        self.tables
            .lock()
            .unwrap()
            .get(table)
            .cloned()
            .unwrap_or_default()
    }
}

impl Table for InMemoryTable {
    async fn put_if_newer(
        &self,
        table: &str,
        item: Item,
        order: &Order,
    ) -> Result<PutResult, WriteError> {
        *self.conditional_puts.lock().unwrap() += 1;
        self.started.lock().unwrap().push(Instant::now());
        self.chosen_fault(&item).await?;
        if self.throttled() {
            return Err(WriteError::Transient(
                "ProvisionedThroughputExceededException".into(),
            ));
        }
        let key = self.key(table, &item);
        let mut tables = self.tables.lock().unwrap();
        let rows = tables.entry(table.to_owned()).or_default();
        if let Some(existing) = rows.get(&key) {
            let stored = Order {
                position: existing[POSITION_ATTR].as_s().unwrap().clone(),
                shard: existing[SHARD_ATTR].as_s().unwrap().clone(),
                arrival_ms: existing[ARRIVAL_ATTR].as_n().unwrap().parse().unwrap(),
            };
            if !order.is_newer_than(&stored) {
                return Ok(PutResult::Stale);
            }
        }
        rows.insert(key, item);
        Ok(PutResult::Written)
    }

    async fn batch_put(&self, table: &str, items: Vec<Item>) -> Result<Vec<Item>, WriteError> {
        self.started.lock().unwrap().push(Instant::now());
        if self.rejects_broken && table == "rejects" {
            return Err(WriteError::Fatal("AccessDeniedException".into()));
        }
        for item in &items {
            self.chosen_fault(item).await?;
        }
        if self.throttled() {
            return Err(WriteError::Transient("InternalServerError".into()));
        }
        let mut unprocessed = Vec::new();
        for item in items {
            if self.faults && self.rng.lock().unwrap().chance(30) {
                unprocessed.push(item);
                continue;
            }
            self.store(table, item);
        }
        Ok(unprocessed)
    }

    async fn put(&self, table: &str, item: Item) -> Result<(), WriteError> {
        self.started.lock().unwrap().push(Instant::now());
        if self.rejects_broken && table == "rejects" {
            return Err(WriteError::Fatal("AccessDeniedException".into()));
        }
        self.chosen_fault(&item).await?;
        if self.throttled() {
            return Err(WriteError::Transient("ThrottlingException".into()));
        }
        self.store(table, item);
        Ok(())
    }
}
