//! Where records survive a restart: a small [`Store`] trait with three
//! implementations, redb (the default), sled (cargo feature `sled`) and an
//! in-memory one for unit tests and `backend = "memory"`.
//!
//! The event loop does not write a record per packet: it marks changed MACs
//! and, every `client_db.flush_interval_ms`, hands the current records of
//! those MACs to [`Store::put`] / [`Store::remove`] and commits them with one
//! [`Store::flush`]: one transaction and one fsync per interval at most.
//! Between flushes the changes are staged in memory, so a crash loses at most
//! one interval of changes, never the database.
//!
//! Records are stored as a small protobuf message ([`StoredRecord`], prost),
//! keyed by the six MAC bytes: compact, and an older or newer daemon can read
//! what the other wrote (unknown fields are skipped, missing ones default).
//! An entry that does not decode is skipped and counted, never a panic.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use l3roamd_types::MacAddr;
use prost::Message;

use crate::db::{ClientAddress, Record, ServingNode, MAX_ADDRESSES, MAX_SERVED_BY};

// ===== the trait =====

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file or directory could not be created, read or renamed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The database engine failed.
    #[error("{path}: {message}")]
    Backend {
        /// The database file or directory.
        path: PathBuf,
        /// What the engine said.
        message: String,
    },
}

impl StoreError {
    fn backend(path: &Path, err: impl std::fmt::Display) -> StoreError {
        StoreError::Backend {
            path: path.to_path_buf(),
            message: err.to_string(),
        }
    }
}

/// What [`Store::load_all`] found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The records that decoded.
    pub records: Vec<Record>,
    /// Entries that did not decode (skipped).
    pub skipped: usize,
}

/// Persistent storage of records. `put` and `remove` are staged; `flush`
/// makes everything staged durable at once.
pub trait Store: Send {
    /// Every stored record.
    fn load_all(&mut self) -> Result<Loaded, StoreError>;
    /// Stages `record`, replacing the stored one of its MAC.
    fn put(&mut self, record: &Record) -> Result<(), StoreError>;
    /// Stages the removal of the record of `mac`.
    fn remove(&mut self, mac: &MacAddr) -> Result<(), StoreError>;
    /// Writes what is staged, durably.
    fn flush(&mut self) -> Result<(), StoreError>;
}

/// Which implementation to use (`client_db.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// redb, one file `<db_path>/clients.redb`.
    Redb,
    /// sled, the directory `<db_path>/sled` (cargo feature `sled`).
    Sled,
    /// Nothing persisted (tests, or a node that should forget on restart).
    Memory,
}

impl Backend {
    /// The name used in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Redb => "redb",
            Backend::Sled => "sled",
            Backend::Memory => "memory",
        }
    }
}

/// Opens the store of `backend` under the directory `db_path`, creating it.
pub fn open(backend: Backend, db_path: &Path) -> Result<Box<dyn Store>, StoreError> {
    if backend != Backend::Memory {
        std::fs::create_dir_all(db_path).map_err(|source| StoreError::Io {
            path: db_path.to_path_buf(),
            source,
        })?;
    }
    match backend {
        Backend::Redb => Ok(Box::new(RedbStore::open(&db_path.join(RedbStore::FILE))?)),
        #[cfg(feature = "sled")]
        Backend::Sled => Ok(Box::new(SledStore::open(
            &db_path.join(SledStore::DIR),
            SledTuning::SMALL,
        )?)),
        #[cfg(not(feature = "sled"))]
        Backend::Sled => Err(StoreError::backend(
            db_path,
            "this client-db was built without the sled feature",
        )),
        Backend::Memory => Ok(Box::new(MemoryStore::default())),
    }
}

// ===== encoding =====

/// Format version written into every stored record.
const FORMAT: u32 = 1;

/// A record as stored (protobuf).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredRecord {
    /// The format version (1).
    #[prost(uint32, tag = "1")]
    pub format: u32,
    /// Six bytes.
    #[prost(bytes = "vec", tag = "2")]
    pub mac: Vec<u8>,
    /// In the order learned.
    #[prost(message, repeated, tag = "3")]
    pub addresses: Vec<StoredAddress>,
    /// Most recent first.
    #[prost(message, repeated, tag = "4")]
    pub served_by: Vec<StoredServingNode>,
    /// Sixteen bytes each.
    #[prost(bytes = "vec", repeated, tag = "5")]
    pub multicast_groups: Vec<Vec<u8>>,
    /// This node serves the client.
    #[prost(bool, tag = "6")]
    pub serving: bool,
    /// Unix seconds of the last change.
    #[prost(uint64, tag = "7")]
    pub updated: u64,
}

/// A [`ClientAddress`] as stored.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredAddress {
    /// Sixteen bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub addr: Vec<u8>,
    /// Unix seconds.
    #[prost(uint64, tag = "2")]
    pub last_seen: u64,
    /// Seconds, 0 when unknown.
    #[prost(uint32, tag = "3")]
    pub lifetime: u32,
}

/// A [`ServingNode`] as stored.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredServingNode {
    /// Sixteen bytes.
    #[prost(bytes = "vec", tag = "1")]
    pub node: Vec<u8>,
    /// Unix seconds.
    #[prost(uint64, tag = "2")]
    pub since: u64,
}

/// The bytes stored for `record`.
pub fn encode(record: &Record) -> Vec<u8> {
    StoredRecord {
        format: FORMAT,
        mac: record.mac.octets().to_vec(),
        addresses: record
            .addresses
            .iter()
            .map(|a| StoredAddress {
                addr: a.addr.octets().to_vec(),
                last_seen: a.last_seen,
                lifetime: a.lifetime,
            })
            .collect(),
        served_by: record
            .served_by
            .iter()
            .map(|s| StoredServingNode {
                node: s.node.octets().to_vec(),
                since: s.since,
            })
            .collect(),
        multicast_groups: record
            .multicast_groups
            .iter()
            .map(|g| g.octets().to_vec())
            .collect(),
        serving: record.serving,
        updated: record.updated,
    }
    .encode_to_vec()
}

/// The record stored as `bytes`, if they decode to a sane one; the limits
/// of [`crate::db`] are applied, so a file cannot inflate a record.
pub fn decode(bytes: &[u8]) -> Option<Record> {
    let stored = StoredRecord::decode(bytes).ok()?;
    let ip = |b: &[u8]| <[u8; 16]>::try_from(b).ok().map(Ipv6Addr::from);
    let mut addresses = Vec::new();
    for a in &stored.addresses {
        let addr = ip(&a.addr)?;
        if !addresses.iter().any(|x: &ClientAddress| x.addr == addr) {
            addresses.push(ClientAddress {
                addr,
                last_seen: a.last_seen,
                lifetime: a.lifetime,
            });
        }
    }
    addresses.truncate(MAX_ADDRESSES);
    let mut served_by: Vec<ServingNode> = Vec::new();
    for s in &stored.served_by {
        let node = ip(&s.node)?;
        if !served_by.iter().any(|x| x.node == node) {
            served_by.push(ServingNode {
                node,
                since: s.since,
            });
        }
    }
    served_by.truncate(MAX_SERVED_BY);
    let multicast_groups = stored
        .multicast_groups
        .iter()
        .map(|g| ip(g))
        .collect::<Option<Vec<_>>>()?;
    Some(Record {
        mac: MacAddr::from_slice(&stored.mac).ok()?,
        addresses,
        served_by,
        multicast_groups: multicast_groups.into_iter().take(MAX_ADDRESSES).collect(),
        serving: stored.serving,
        updated: stored.updated,
    })
}

impl Loaded {
    /// Decodes one stored entry; a value that does not decode, or whose MAC
    /// differs from its key, is skipped and counted.
    fn take(&mut self, key: &[u8], value: &[u8]) {
        match decode(value) {
            Some(r) if r.mac.octets() == key => self.records.push(r),
            _ => self.skipped += 1,
        }
    }
}

// ===== in memory =====

/// Keeps encoded records in memory: for tests (it goes through the same
/// encoding as the real stores) and for `backend = "memory"`.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    durable: HashMap<MacAddr, Vec<u8>>,
    staged: HashMap<MacAddr, Option<Vec<u8>>>,
}

impl MemoryStore {
    /// Number of durable entries.
    pub fn len(&self) -> usize {
        self.durable.len()
    }

    /// True when nothing is durable.
    pub fn is_empty(&self) -> bool {
        self.durable.is_empty()
    }

    /// Writes raw bytes under `key`, durably (tests of undecodable entries).
    pub fn insert_raw(&mut self, key: MacAddr, value: Vec<u8>) {
        self.durable.insert(key, value);
    }
}

impl Store for MemoryStore {
    fn load_all(&mut self) -> Result<Loaded, StoreError> {
        let mut loaded = Loaded::default();
        for (mac, value) in &self.durable {
            loaded.take(&mac.octets(), value);
        }
        Ok(loaded)
    }

    fn put(&mut self, record: &Record) -> Result<(), StoreError> {
        self.staged.insert(record.mac, Some(encode(record)));
        Ok(())
    }

    fn remove(&mut self, mac: &MacAddr) -> Result<(), StoreError> {
        self.staged.insert(*mac, None);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        for (mac, value) in self.staged.drain() {
            match value {
                Some(v) => self.durable.insert(mac, v),
                None => self.durable.remove(&mac),
            };
        }
        Ok(())
    }
}

// ===== redb =====

/// The one table: MAC bytes to encoded record.
const CLIENTS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("clients");

/// redb's page cache. Its default is 1 GiB (it grows as pages are read);
/// 1,000 records fit in about 100 KiB, so 256 KiB holds them all.
const REDB_CACHE_BYTES: usize = 256 * 1024;

/// The redb store: one file, no threads of its own, a bounded page cache.
/// Under constant rewriting the file levels off at about twice its live
/// data (redb reuses the pages freed by earlier transactions: about 520 KB
/// for 1,000 clients); it is compacted at every start.
pub struct RedbStore {
    db: redb::Database,
    path: PathBuf,
    staged: HashMap<MacAddr, Option<Vec<u8>>>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .field("staged", &self.staged.len())
            .finish()
    }
}

impl RedbStore {
    /// The file name under `db_path`.
    pub const FILE: &'static str = "clients.redb";

    /// Opens or creates the database file `path`. Its integrity is checked
    /// (the file is small): a file that is corrupt or of an unknown format
    /// is moved aside to `<path>.corrupt` and a new one is started, because
    /// a lost client database only costs a few slower roams, while refusing
    /// to start costs all of them.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let db = match Self::open_file(path) {
            Ok(db) => db,
            Err(e) if Self::is_unusable(&e) => {
                let aside = path.with_extension("redb.corrupt");
                tracing::error!(path = %path.display(), error = %e, aside = %aside.display(),
                    "client database unusable; moving it aside and starting a new one");
                std::fs::rename(path, &aside).map_err(|source| StoreError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                Self::open_file(path).map_err(|e| StoreError::backend(path, e))?
            }
            Err(e) => return Err(StoreError::backend(path, e)),
        };
        let mut db = db;
        // Give back the pages freed by earlier runs (the file lives on tmpfs,
        // which is RAM); a failure only leaves the file as large as it was.
        if let Err(e) = db.compact() {
            tracing::debug!(path = %path.display(), error = %e, "cannot compact the client database");
        }
        Ok(RedbStore {
            db,
            path: path.to_path_buf(),
            staged: HashMap::new(),
        })
    }

    /// Whether `e` says the file itself is bad (rather than, say, locked
    /// by another process or unreadable), so that starting anew is right.
    fn is_unusable(e: &redb::DatabaseError) -> bool {
        match e {
            redb::DatabaseError::Storage(redb::StorageError::Corrupted(_))
            | redb::DatabaseError::UpgradeRequired(_)
            | redb::DatabaseError::RepairAborted => true,
            // "Not a redb database", a truncated header...
            redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
                matches!(
                    io.kind(),
                    std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
                )
            }
            _ => false,
        }
    }

    fn open_file(path: &Path) -> Result<redb::Database, redb::DatabaseError> {
        redb::Builder::new()
            .set_cache_size(REDB_CACHE_BYTES)
            .set_check_integrity_on_open(true)
            .create(path)
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::backend(&self.path, e)
    }
}

impl Store for RedbStore {
    fn load_all(&mut self) -> Result<Loaded, StoreError> {
        use redb::{ReadableDatabase, ReadableTable};
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = match txn.open_table(CLIENTS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Loaded::default()),
            Err(e) => return Err(self.err(e)),
        };
        let mut loaded = Loaded::default();
        for entry in table.iter().map_err(|e| self.err(e))? {
            match entry {
                Ok((k, v)) => loaded.take(k.value(), v.value()),
                Err(_) => loaded.skipped += 1,
            }
        }
        Ok(loaded)
    }

    fn put(&mut self, record: &Record) -> Result<(), StoreError> {
        self.staged.insert(record.mac, Some(encode(record)));
        Ok(())
    }

    fn remove(&mut self, mac: &MacAddr) -> Result<(), StoreError> {
        self.staged.insert(*mac, None);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(CLIENTS).map_err(|e| self.err(e))?;
            for (mac, value) in &self.staged {
                let key = mac.octets();
                match value {
                    Some(v) => table
                        .insert(key.as_slice(), v.as_slice())
                        .map(|_| ())
                        .map_err(|e| self.err(e))?,
                    None => table
                        .remove(key.as_slice())
                        .map(|_| ())
                        .map_err(|e| self.err(e))?,
                }
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        // Only now is it durable; on an error above the batch stays staged
        // and is tried again at the next flush.
        self.staged.clear();
        Ok(())
    }
}

// ===== sled =====

/// sled settings tried to fit the memory budget.
#[cfg(feature = "sled")]
#[derive(Debug, Clone, Copy)]
pub struct SledTuning {
    /// `cache_capacity` in bytes.
    pub cache_capacity: u64,
    /// `Mode::LowSpace` instead of `Mode::HighThroughput`.
    pub low_space: bool,
    /// `flush_every_ms`; `None` leaves flushing to [`Store::flush`].
    pub flush_every_ms: Option<u64>,
}

#[cfg(feature = "sled")]
impl SledTuning {
    /// sled's defaults (1 GiB cache, fast mode, flush every 500 ms).
    pub const DEFAULT: SledTuning = SledTuning {
        cache_capacity: 1024 * 1024 * 1024,
        low_space: false,
        flush_every_ms: Some(500),
    };

    /// The smallest settings: 64 KiB cache, low space, no background flush.
    pub const SMALL: SledTuning = SledTuning {
        cache_capacity: 64 * 1024,
        low_space: true,
        flush_every_ms: None,
    };
}

/// The sled store: a directory; sled keeps its own write buffer, which
/// [`Store::flush`] writes out.
#[cfg(feature = "sled")]
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    path: PathBuf,
}

#[cfg(feature = "sled")]
impl SledStore {
    /// The directory name under `db_path`.
    pub const DIR: &'static str = "sled";

    /// Opens or creates the sled database in the directory `path`.
    pub fn open(path: &Path, tuning: SledTuning) -> Result<SledStore, StoreError> {
        let mode = if tuning.low_space {
            sled::Mode::LowSpace
        } else {
            sled::Mode::HighThroughput
        };
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(tuning.cache_capacity)
            .mode(mode)
            .flush_every_ms(tuning.flush_every_ms)
            .open()
            .map_err(|e| StoreError::backend(path, e))?;
        Ok(SledStore {
            db,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::backend(&self.path, e)
    }
}

#[cfg(feature = "sled")]
impl Store for SledStore {
    fn load_all(&mut self) -> Result<Loaded, StoreError> {
        let mut loaded = Loaded::default();
        for entry in self.db.iter() {
            match entry {
                Ok((k, v)) => loaded.take(&k, &v),
                Err(_) => loaded.skipped += 1,
            }
        }
        Ok(loaded)
    }

    fn put(&mut self, record: &Record) -> Result<(), StoreError> {
        self.db
            .insert(record.mac.octets(), encode(record))
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn remove(&mut self, mac: &MacAddr) -> Result<(), StoreError> {
        self.db
            .remove(mac.octets())
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(|e| self.err(e))
    }
}

// ===== tests =====

#[cfg(test)]
mod tests {
    use super::*;
    use l3roamd_types::damage::{damaged, xorshift};

    fn record(i: u8) -> Record {
        let mac = MacAddr([2, 0, 0, 0, 1, i]);
        let mut r = Record::new(mac, 1_700_000_000);
        r.merge_addresses(
            [
                Ipv6Addr::new(0xfddd, 1, 0, 0, 0, 0, 0, u16::from(i)),
                mac.link_local(),
            ],
            1_700_000_000,
        );
        r.note_served_by("fdff::1".parse().unwrap(), 1_700_000_100);
        r.serving = i.is_multiple_of(2);
        r
    }

    fn sorted(mut v: Vec<Record>) -> Vec<Record> {
        v.sort_by_key(|r| r.mac);
        v
    }

    fn round_trip(store: &mut dyn Store) {
        for i in 0..10 {
            store.put(&record(i)).unwrap();
        }
        store.flush().unwrap();
        store.remove(&record(3).mac).unwrap();
        let mut changed = record(4);
        changed.serving = true;
        store.put(&changed).unwrap();
        store.flush().unwrap();
        let loaded = store.load_all().unwrap();
        assert_eq!(loaded.skipped, 0);
        let mut expected: Vec<Record> = (0..10).filter(|i| *i != 3).map(record).collect();
        expected[3] = changed;
        assert_eq!(sorted(loaded.records), sorted(expected));
    }

    #[test]
    fn encoding_round_trip_and_garbage() {
        let r = record(1);
        assert_eq!(decode(&encode(&r)), Some(r));
        assert_eq!(decode(&[0xff, 0xff, 0xff]), None);
        assert_eq!(decode(&[]), None); // no MAC
        let bad_addr = StoredRecord {
            format: FORMAT,
            mac: vec![2, 0, 0, 0, 0, 1],
            addresses: vec![StoredAddress {
                addr: vec![1, 2, 3],
                last_seen: 0,
                lifetime: 0,
            }],
            ..StoredRecord::default()
        };
        assert_eq!(decode(&bad_addr.encode_to_vec()), None);
    }

    #[test]
    fn memory_store_stages_until_flush() {
        let mut store = MemoryStore::default();
        store.put(&record(1)).unwrap();
        assert!(store.load_all().unwrap().records.is_empty());
        store.flush().unwrap();
        assert_eq!(store.len(), 1);
        store.insert_raw(MacAddr([2, 0, 0, 0, 0, 9]), vec![0xff]);
        store.insert_raw(MacAddr([2, 0, 0, 0, 0, 8]), encode(&record(7)));
        let loaded = store.load_all().unwrap();
        assert_eq!(loaded.records.len(), 1);
        assert_eq!(loaded.skipped, 2, "garbage and a key that is not its MAC");
        round_trip(&mut MemoryStore::default());
    }

    #[test]
    fn redb_round_trip_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RedbStore::FILE);
        {
            let mut store = RedbStore::open(&path).unwrap();
            assert!(store.load_all().unwrap().records.is_empty());
            round_trip(&mut store);
            store.put(&record(20)).unwrap(); // staged, never flushed
        }
        let mut store = RedbStore::open(&path).unwrap();
        let loaded = store.load_all().unwrap();
        assert_eq!(loaded.records.len(), 9);
        assert!(!loaded.records.iter().any(|r| r.mac == record(20).mac));
    }

    #[test]
    fn redb_corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RedbStore::FILE);
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let mut store = RedbStore::open(&path).unwrap();
        assert!(store.load_all().unwrap().records.is_empty());
        assert!(dir.path().join("clients.redb.corrupt").exists());
    }

    #[test]
    fn redb_damaged_files_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.redb");
        {
            let mut store = RedbStore::open(&good).unwrap();
            round_trip(&mut store);
        }
        let bytes = std::fs::read(&good).unwrap();
        let len = bytes.len();
        // Truncated at several places, and overwritten in the middle.
        let mut damaged: Vec<Vec<u8>> = [16, 512, 4096, len / 2, len - 1]
            .iter()
            .map(|&cut| bytes[..cut.min(len)].to_vec())
            .collect();
        for at in (0..len).step_by(len / 64).chain([64, 4096, len / 2]) {
            let mut b = bytes.clone();
            let end = (at + 512).min(len);
            b[at..end].iter_mut().for_each(|x| *x ^= 0xa5);
            damaged.push(b);
        }
        for (i, b) in damaged.into_iter().enumerate() {
            let path = dir.path().join(format!("damaged-{i}.redb"));
            std::fs::write(&path, b).unwrap();
            // Either it opens (and reads whatever survived) or it is moved
            // aside and a new one starts: never a panic, never an error.
            let mut store = RedbStore::open(&path).unwrap();
            let loaded = store.load_all().unwrap();
            assert!(loaded.records.len() <= 9, "{i}");
        }
    }

    #[test]
    fn open_creates_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("a/b/client-db");
        let mut store = open(Backend::Redb, &db_path).unwrap();
        store.put(&record(1)).unwrap();
        store.flush().unwrap();
        assert!(db_path.join(RedbStore::FILE).exists());
        #[cfg(not(feature = "sled"))]
        assert!(open(Backend::Sled, &db_path).is_err());
    }

    #[cfg(feature = "sled")]
    #[test]
    fn sled_round_trip_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SledStore::DIR);
        {
            let mut store = SledStore::open(&path, SledTuning::SMALL).unwrap();
            round_trip(&mut store);
        }
        let mut store = SledStore::open(&path, SledTuning::SMALL).unwrap();
        assert_eq!(store.load_all().unwrap().records.len(), 9);
    }

    // ===== property: random and damaged input =====

    #[test]
    fn random_and_damaged_records_never_panic() {
        let mut next = xorshift(0x5eed_0dd0_0000_0007);
        let seeds: Vec<Vec<u8>> = (0..4).map(|i| encode(&record(i))).collect();
        for round in 0..5000 {
            let bytes = damaged(&seeds[round % seeds.len()], &mut next);
            if let Some(r) = decode(&bytes) {
                assert!(r.addresses.len() <= MAX_ADDRESSES);
                assert!(r.served_by.len() <= MAX_SERVED_BY);
                assert_eq!(decode(&encode(&r)), Some(r));
            }
        }
    }
}
