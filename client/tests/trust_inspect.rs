//! `tufa inspect` output against what the real `docker trust inspect` printed for the same
//! repository (tests/data/docker/, metadata in tests/data/notary/reference-scenario/).

use tufa_client::trust::inspect::{inspect, pretty, to_json};
use tufa_client::tuf::{update, Gun, TrustCache, UpdateOptions, VerifiedRepo};
use tufa_testkit::{data_dir, sample, sample_time, MemStore};

async fn reference_repo() -> VerifiedRepo {
    let store = MemStore::serving(&sample("reference-scenario"));
    let dir = tempfile::tempdir().unwrap();
    let gun: Gun = "127.0.0.1:5000/dct/app".parse().unwrap();
    update(
        &store,
        &TrustCache::new(dir.path()),
        &gun,
        &UpdateOptions::at(sample_time()),
    )
    .await
    .unwrap()
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(data_dir("docker").join(name)).unwrap()
}

#[tokio::test]
async fn json_equals_docker() {
    let repo = reference_repo().await;
    let all = inspect(&repo, "127.0.0.1:5000/dct/app", None);
    assert_eq!(to_json(&[all]), expected("docker-trust-inspect.txt"));
    let v2 = inspect(&repo, "127.0.0.1:5000/dct/app:v2", Some("v2"));
    assert_eq!(to_json(&[v2]), expected("docker-trust-inspect-tag-v2.txt"));
}

#[tokio::test]
async fn pretty_equals_docker() {
    let repo = reference_repo().await;
    let all = inspect(&repo, "127.0.0.1:5000/dct/app", None);
    assert_eq!(pretty(&all), expected("docker-trust-inspect-pretty.txt"));
    let v2 = inspect(&repo, "127.0.0.1:5000/dct/app:v2", Some("v2"));
    assert_eq!(
        pretty(&v2),
        expected("docker-trust-inspect-pretty-tag-v2.txt")
    );
}

#[tokio::test]
async fn an_unknown_tag_has_no_signatures() {
    let repo = reference_repo().await;
    let none = inspect(&repo, "127.0.0.1:5000/dct/app:nope", Some("nope"));
    assert!(none.signed_tags.is_empty());
    assert!(pretty(&none).starts_with("\nNo signatures for 127.0.0.1:5000/dct/app:nope\n\n"));
}
