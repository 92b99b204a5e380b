//! Replays every fuzz target's checked-in seed corpus (`fuzz/corpus/<target>/`) through the
//! checks the fuzz target runs, on stable, and checks that the corpus is what
//! `rsgrpc_fuzz_checks::seeds` makes. `RSGRPC_WRITE_SEEDS=1` rewrites the seeds instead.

use std::collections::BTreeMap;
use std::path::PathBuf;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// The files of a target's corpus, by name.
fn read_corpus(target: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = corpus_dir(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    entries
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("seed file"))
        })
        .collect()
}

/// Replays one target's seeds: each must land in the class its name gives.
fn replay(target: &str) {
    let (_, check) = rsgrpc_fuzz_checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz target {target}"));
    let corpus = read_corpus(target);
    assert!(corpus.len() >= 8, "{target}: only {} seeds", corpus.len());
    let mut wrong = Vec::new();
    let mut classes = std::collections::BTreeSet::new();
    for (name, bytes) in &corpus {
        let (class, _) = name
            .split_once("--")
            .unwrap_or_else(|| panic!("{target}/{name}: not named <class>--<what>"));
        classes.insert(class);
        let got = check(bytes);
        if got != class {
            wrong.push(format!("{target}/{name}: {got}"));
        }
    }
    assert!(wrong.is_empty(), "seeds outside their class: {wrong:#?}");
    assert!(classes.len() >= 2, "{target}: seeds reach only {classes:?}");
}

/// One test per fuzz target, so a failure names it (and Miri can pick targets by name).
macro_rules! replay_tests {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target));
            }
        )*

        #[test]
        fn every_target_has_a_replay_test() {
            let tested = [$(stringify!($target)),*];
            for (target, _) in rsgrpc_fuzz_checks::TARGETS {
                assert!(tested.contains(target), "{target} has no replay test");
            }
        }
    };
}

replay_tests!(
    frame_decoder,
    gzip,
    grpc_timeout,
    grpc_message,
    metadata,
    status_details,
    service_config,
    codegen,
    header_block,
);

#[test]
fn checked_in_seeds_are_the_generated_ones() {
    let write = std::env::var_os("RSGRPC_WRITE_SEEDS").is_some_and(|v| v == "1");
    for (target, seeds) in rsgrpc_fuzz_checks::seeds::all() {
        let want: BTreeMap<String, Vec<u8>> = seeds.into_iter().collect();
        for (name, bytes) in &want {
            assert!(
                bytes.len() <= 8 << 10,
                "{target}/{name}: {} bytes",
                bytes.len()
            );
        }
        if write {
            let dir = corpus_dir(target);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            for (name, bytes) in &want {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
            continue;
        }
        let have = read_corpus(target);
        let missing: Vec<&String> = want.keys().filter(|n| !have.contains_key(*n)).collect();
        let extra: Vec<&String> = have.keys().filter(|n| !want.contains_key(*n)).collect();
        let changed: Vec<&String> = want
            .iter()
            .filter(|(n, b)| have.get(*n).is_some_and(|h| h != *b))
            .map(|(n, _)| n)
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty() && changed.is_empty(),
            "{target}: corpus differs from seeds::all() (missing {missing:?}, extra {extra:?}, \
             changed {changed:?}); rerun with RSGRPC_WRITE_SEEDS=1 and check the diff"
        );
    }
}
