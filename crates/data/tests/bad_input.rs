//! Each kind of bad input gives an error that names the problem; none panics.

mod common;

use common::sample_dataset;
use ofql_data::{Dtype, load, read_d4rl, registry, write_d4rl, write_parquet};

fn message(result: anyhow::Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", result.expect_err("expected an error"))
}

#[test]
fn missing_file() {
    let msg = message(load(std::path::Path::new("/no/such/file.hdf5")));
    assert!(msg.contains("file not found: /no/such/file.hdf5"), "{msg}");
    let msg = message(read_d4rl(std::path::Path::new("/no/such/file.hdf5")));
    assert!(msg.contains("file not found"), "{msg}");
}

#[test]
fn non_hdf5_and_empty_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.hdf5");
    std::fs::write(&text, "observations,actions\n1,2\n").unwrap();
    let msg = message(load(&text));
    assert!(msg.contains("is not an HDF5 or parquet file") && msg.contains("no HDF5"), "{msg}");
    let empty = dir.path().join("empty.hdf5");
    std::fs::write(&empty, "").unwrap();
    assert!(message(load(&empty)).contains("the file is empty"));
    // Read directly as D4RL, the HDF5 library's refusal is reported with the file name.
    let msg = message(read_d4rl(&text));
    assert!(msg.contains("could not be opened as HDF5") && msg.contains("notes.hdf5"), "{msg}");
}

#[test]
fn truncated_hdf5_file() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.hdf5");
    write_d4rl(&full, &sample_dataset(), Dtype::F32).unwrap();
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.hdf5");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let msg = message(load(&cut));
    assert!(msg.contains("cut.hdf5") && msg.contains("truncated or corrupt"), "{msg}");
}

#[test]
fn truncated_parquet_file() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.parquet");
    write_parquet(&full, &sample_dataset()).unwrap();
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let msg = message(load(&cut));
    assert!(msg.contains("cut.parquet is not a readable parquet file"), "{msg}");
}

/// Write a D4RL file with raw hdf5 calls so that it can be broken on purpose.
fn raw_file(path: &std::path::Path, obs_rows: usize, act_rows: usize, with_actions: bool) {
    let f = hdf5::File::create(path).unwrap();
    let obs = ndarray::Array2::<f32>::zeros((obs_rows, 3));
    f.new_dataset_builder().with_data(&obs).create("observations").unwrap();
    if with_actions {
        let acts = ndarray::Array2::<f32>::zeros((act_rows, 2));
        f.new_dataset_builder().with_data(&acts).create("actions").unwrap();
    }
    let rewards = ndarray::Array1::<f32>::zeros(obs_rows);
    f.new_dataset_builder().with_data(&rewards).create("rewards").unwrap();
    let flags = ndarray::Array1::from_elem(obs_rows, false);
    f.new_dataset_builder().with_data(&flags).create("terminals").unwrap();
    f.new_dataset_builder().with_data(&flags).create("timeouts").unwrap();
}

#[test]
fn missing_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("noact.hdf5");
    raw_file(&path, 5, 5, false);
    let msg = message(load(&path));
    assert!(msg.contains("noact.hdf5: key `actions` is missing"), "{msg}");
}

#[test]
fn arrays_of_unequal_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.hdf5");
    raw_file(&path, 5, 4, true);
    let msg = message(load(&path));
    assert!(msg.contains("`actions` has 4 rows but `observations` has 5"), "{msg}");
}

#[test]
fn nan_and_inf_are_reported_with_the_first_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.hdf5");
    let mut data = sample_dataset();
    data.observations[[7, 2]] = f32::NAN;
    data.observations[[9, 0]] = f32::NAN;
    write_d4rl(&path, &data, Dtype::F64).unwrap();
    let msg = message(load(&path));
    assert!(
        msg.contains("`observations` holds a non-finite value (NaN) at row 7, column 2"),
        "{msg}"
    );

    let mut data = sample_dataset();
    data.rewards[4] = f32::INFINITY;
    let pq = dir.path().join("inf.parquet");
    write_parquet(&pq, &data).unwrap();
    let msg = message(load(&pq));
    assert!(msg.contains("`rewards` holds a non-finite value (inf) at row 4"), "{msg}");
}

#[test]
fn action_dimension_disagreeing_with_the_environment() {
    let data = sample_dataset();
    let err = registry::env_spec("hopper").unwrap().check_dims(data.obs_dim(), data.act_dim());
    let msg = err.unwrap_err().to_string();
    assert!(msg.contains("action dimension is 2 but environment `hopper` has 3"), "{msg}");
}

#[test]
fn unknown_dataset_name_suggests_close_names() {
    let msg = registry::lookup("walker2d-medum-v2").unwrap_err().to_string();
    assert!(
        msg.contains("unknown dataset `walker2d-medum-v2`; did you mean `walker2d-medium-v2`"),
        "{msg}"
    );
    let msg = registry::lookup("zzzzzzzzzzzzzzzzzzzzzzzzzzzz").unwrap_err().to_string();
    assert!(msg.contains("ofql dataset fetch --list"), "{msg}");
}

/// A header that claims far more rows than the file holds (chunks never written): an error
/// naming the claim, before anything of that size is allocated.
#[test]
fn a_header_claiming_huge_shapes_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.hdf5");
    {
        let f = hdf5::File::create(&path).unwrap();
        let rows = 1_000_000_000_000usize;
        let claim = |name: &str, cols: &[usize]| {
            let shape: Vec<usize> = std::iter::once(rows).chain(cols.iter().copied()).collect();
            let chunk: Vec<usize> = std::iter::once(1024).chain(cols.iter().copied()).collect();
            f.new_dataset::<f32>().chunk(chunk).shape(shape).create(name).unwrap();
        };
        claim("observations", &[11]);
        claim("actions", &[3]);
        claim("rewards", &[]);
        f.new_dataset::<bool>().chunk(1024).shape(rows).create("terminals").unwrap();
    }
    assert!(std::fs::metadata(&path).unwrap().len() < 1 << 20);
    let msg = message(load(&path));
    assert!(
        msg.contains("claims shape [1000000000000, 11]") && msg.contains("stores only"),
        "{msg}"
    );

    // Lengths that disagree are found from the headers, before the big array is read.
    let path = dir.path().join("mismatch.hdf5");
    {
        let f = hdf5::File::create(&path).unwrap();
        f.new_dataset::<f32>()
            .chunk((1024, 11))
            .shape((200_000_000, 11))
            .create("observations")
            .unwrap();
        let acts = ndarray::Array2::<f32>::zeros((5, 3));
        f.new_dataset_builder().with_data(&acts).create("actions").unwrap();
    }
    let msg = message(load(&path));
    assert!(msg.contains("`actions` has 5 rows but `observations` has 200000000"), "{msg}");
}
