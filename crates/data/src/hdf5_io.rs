//! Thin helpers over `hdf5` for the array shapes and dtypes D4RL and Minari use.

use std::path::Path;

use anyhow::{Context, Result, bail};
use hdf5::types::{FloatSize, TypeDescriptor, VarLenUnicode};
use hdf5::{Conversion, H5Type};
use ndarray::{Array2, ArrayView, Dimension};

use crate::dataset::Dtype;

/// gzip level D4RL's own files use; also what `ofql dataset generate` writes.
pub const GZIP_LEVEL: u8 = 4;

/// Rows per chunk: large enough for gzip to work well, small enough to read a slice fast.
const CHUNK_ROWS: usize = 4096;

/// Write a 2-D float32 array as a chunked, gzip-compressed dataset.
pub fn write_f32_2d(file: &hdf5::File, name: &str, data: &Array2<f32>) -> Result<()> {
    write_array(file, name, data.view())
}

/// Write any array as a chunked, gzip-compressed dataset (chunks of whole rows).
pub fn write_array<T: H5Type, D: Dimension>(
    group: &hdf5::Group,
    name: &str,
    data: ArrayView<'_, T, D>,
) -> Result<()> {
    let mut chunk: Vec<usize> = data.shape().iter().map(|&d| d.max(1)).collect();
    if let Some(rows) = chunk.first_mut() {
        *rows = (*rows).min(CHUNK_ROWS);
    }
    group
        .new_dataset_builder()
        .chunk(chunk)
        .deflate(GZIP_LEVEL)
        .with_data(data)
        .create(name)
        .with_context(|| format!("write dataset `{name}`"))?;
    Ok(())
}

/// Write float data in the requested on-disk dtype (f64 widens exactly).
pub fn write_floats<D: Dimension>(
    group: &hdf5::Group,
    name: &str,
    data: ArrayView<'_, f32, D>,
    dtype: Dtype,
) -> Result<()> {
    match dtype {
        Dtype::F32 => write_array(group, name, data),
        Dtype::F64 => write_array(group, name, data.mapv(f64::from).view()),
    }
}

/// Write a scalar string (variable-length UTF-8, as h5py writes `str`).
pub fn write_string(group: &hdf5::Group, name: &str, value: &str) -> Result<()> {
    let v: VarLenUnicode = value.parse().with_context(|| format!("string for `{name}`"))?;
    group.new_dataset::<VarLenUnicode>().create(name)?.write_scalar(&v)?;
    Ok(())
}

/// The float dtype of a dataset, or None for other types.
pub fn float_dtype(ds: &hdf5::Dataset) -> Result<Option<Dtype>> {
    Ok(match ds.dtype()?.to_descriptor()? {
        TypeDescriptor::Float(FloatSize::U4) => Some(Dtype::F32),
        TypeDescriptor::Float(FloatSize::U8) => Some(Dtype::F64),
        _ => None,
    })
}

/// Refuse, before anything is allocated, a dataset whose header claims more data than the
/// file can hold or the machine can load: a corrupt or crafted header must give an error,
/// not an out-of-memory kill. `out_bytes` is the size of one element as it will be kept.
pub fn check_claimed_size(ds: &hdf5::Dataset, out_bytes: usize) -> Result<()> {
    let shape = ds.shape();
    let name = ds.name();
    let element = ds.dtype().map(|t| t.size()).unwrap_or(8) + out_bytes;
    let bytes = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(element))
        .map(|b| b as u64);
    let Some(bytes) = bytes else {
        bail!(
            "dataset `{name}` claims shape {shape:?}, beyond what can be addressed: the file is corrupt"
        );
    };
    // Deflate, the strongest filter HDF5 files use here, shrinks data at most about 1032:1.
    let stored = ds.storage_size();
    let plausible = stored.saturating_mul(1100).saturating_add(1 << 20);
    if bytes > plausible {
        bail!(
            "dataset `{name}` claims shape {shape:?} ({}), but the file stores only {stored} bytes \
             of it: the header is corrupt or the file truncated",
            human_bytes(bytes)
        );
    }
    if let Some(free) = available_memory()
        && bytes > free
    {
        bail!(
            "dataset `{name}` (shape {shape:?}) needs {} to load, but only {} of memory is \
             available",
            human_bytes(bytes),
            human_bytes(free)
        );
    }
    Ok(())
}

/// MemAvailable from /proc/meminfo (None where there is no such file).
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn human_bytes(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b => format!("{b} bytes"),
    }
}

/// Read a numeric dataset as f32 in row-major order, with its shape and source dtype.
/// f64 is narrowed in Rust (round to nearest); integers are converted by HDF5.
pub fn read_f32_raw(ds: &hdf5::Dataset) -> Result<(Vec<f32>, Vec<usize>, Dtype)> {
    check_claimed_size(ds, 4)?;
    let shape = ds.shape();
    let (values, dtype) = match float_dtype(ds)? {
        Some(Dtype::F32) => (ds.read_raw::<f32>()?, Dtype::F32),
        Some(Dtype::F64) => {
            (ds.read_raw::<f64>()?.into_iter().map(|v| v as f32).collect(), Dtype::F64)
        }
        None => {
            let raw = ds.as_reader().conversion(Conversion::Soft).read_raw::<f64>()?;
            (raw.into_iter().map(|v| v as f32).collect(), Dtype::F32)
        }
    };
    Ok((values, shape, dtype))
}

/// Read a 2-D float dataset as f32 (float64 is narrowed).
pub fn read_f32_2d(file: &hdf5::Group, name: &str) -> Result<Array2<f32>> {
    let ds = file.dataset(name).with_context(|| format!("dataset `{name}` is missing"))?;
    let (values, shape, _) = read_f32_raw(&ds).with_context(|| format!("read dataset `{name}`"))?;
    if shape.len() != 2 {
        bail!("dataset `{name}` has shape {shape:?}, expected 2 dimensions");
    }
    Ok(Array2::from_shape_vec((shape[0], shape[1]), values)?)
}

/// Read a 1-D flag array: HDF5/h5py booleans, or numbers where non-zero means true.
pub fn read_flags(ds: &hdf5::Dataset) -> Result<Vec<bool>> {
    check_claimed_size(ds, 1)?;
    Ok(match ds.dtype()?.to_descriptor()? {
        TypeDescriptor::Boolean | TypeDescriptor::Enum(_) => {
            ds.as_reader().conversion(Conversion::Soft).read_raw::<bool>()?
        }
        _ => ds
            .as_reader()
            .conversion(Conversion::Soft)
            .read_raw::<f64>()?
            .into_iter()
            .map(|v| v != 0.0)
            .collect(),
    })
}

/// Read a scalar (or one-element) dataset as JSON: strings, integers, floats and booleans.
/// None for arrays and other types (e.g. the SAC weights under D4RL's `metadata/policy`).
pub fn read_scalar_json(ds: &hdf5::Dataset) -> Result<Option<serde_json::Value>> {
    use hdf5::types::{FixedAscii, FixedUnicode, VarLenAscii};
    if ds.size() != 1 {
        return Ok(None);
    }
    let soft = || ds.as_reader().conversion(Conversion::Soft);
    let value = match ds.dtype()?.to_descriptor()? {
        TypeDescriptor::VarLenUnicode => soft().read_raw::<VarLenUnicode>()?[0].to_string().into(),
        TypeDescriptor::VarLenAscii => soft().read_raw::<VarLenAscii>()?[0].to_string().into(),
        TypeDescriptor::FixedAscii(_) => {
            soft().read_raw::<FixedAscii<1024>>()?[0].to_string().into()
        }
        TypeDescriptor::FixedUnicode(_) => {
            soft().read_raw::<FixedUnicode<1024>>()?[0].to_string().into()
        }
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
            soft().read_raw::<i64>()?[0].into()
        }
        TypeDescriptor::Float(_) => soft().read_raw::<f64>()?[0].into(),
        TypeDescriptor::Boolean => soft().read_raw::<bool>()?[0].into(),
        _ => return Ok(None),
    };
    Ok(Some(value))
}

/// Write a JSON scalar as an HDF5 scalar dataset; other JSON values are written as strings.
pub fn write_scalar_json(group: &hdf5::Group, name: &str, value: &serde_json::Value) -> Result<()> {
    use serde_json::Value;
    match value {
        Value::Bool(b) => group.new_dataset::<bool>().create(name)?.write_scalar(b)?,
        Value::Number(n) if n.is_i64() => {
            group.new_dataset::<i64>().create(name)?.write_scalar(&n.as_i64().unwrap_or(0))?
        }
        Value::Number(n) => group
            .new_dataset::<f64>()
            .create(name)?
            .write_scalar(&n.as_f64().unwrap_or(f64::NAN))?,
        Value::String(s) => write_string(group, name, s)?,
        other => write_string(group, name, &other.to_string())?,
    }
    Ok(())
}

/// Open an HDF5 file read-only with an error that names the file.
pub fn open(path: &Path) -> Result<hdf5::File> {
    open_read_only(path).with_context(|| format!("open HDF5 file {}", path.display()))
}

/// Read-only open without HDF5's file lock. The lock (flock) is held by every descriptor of
/// the file, and HDF5 does not mark its descriptors close-on-exec: a process that forks while
/// it has a file open (a test harness, a job runner) leaves the lock with its children, and
/// every later reader would fail with "unable to lock file". Readers never need it.
/// A file this process already holds open must be opened with the same locking setting, so
/// that case falls back to HDF5's default.
pub fn open_read_only(path: &Path) -> hdf5::Result<hdf5::File> {
    hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .open(path)
        .or_else(|_| hdf5::File::open(path))
}

#[cfg(test)]
mod tests {
    use hdf5::filters::Filter;

    use super::*;

    #[test]
    fn gzip_dataset_round_trips() {
        assert!(hdf5::filters::deflate_available(), "HDF5 was built without the deflate filter");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.hdf5");
        let obs = Array2::from_shape_fn((1000, 17), |(i, j)| (i as f32) * 0.01 - (j as f32) * 0.5);
        {
            let f = hdf5::File::create(&path).unwrap();
            write_f32_2d(&f, "observations", &obs).unwrap();
        }
        let f = open(&path).unwrap();
        let ds = f.dataset("observations").unwrap();
        assert!(ds.filters().iter().any(|x| matches!(x, Filter::Deflate(_))), "{:?}", ds.filters());
        assert_eq!(read_f32_2d(&f, "observations").unwrap(), obs);
        assert_eq!(float_dtype(&ds).unwrap(), Some(Dtype::F32));
        // Compressed: far below the 68 kB of raw floats for such regular data.
        assert!(std::fs::metadata(&path).unwrap().len() < 68_000);
        let err = read_f32_2d(&f, "actions").unwrap_err();
        assert!(format!("{err:#}").contains("`actions` is missing"));
    }
}

#[cfg(test)]
mod more_tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn float64_and_flags_and_scalars_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.hdf5");
        let wide = array![[0.1f64, -2.5], [1e-8, 3.0]];
        {
            let f = hdf5::File::create(&path).unwrap();
            write_array(&f, "x", wide.view()).unwrap();
            write_array(&f, "flags", array![true, false, true].view()).unwrap();
            write_array(&f, "ints", array![0u8, 2, 0].view()).unwrap();
            write_string(&f, "name", "sac").unwrap();
            write_scalar_json(&f, "iter", &serde_json::json!(42)).unwrap();
            f.new_dataset::<hdf5::types::FixedAscii<8>>()
                .create("fixed")
                .unwrap()
                .write_scalar(&hdf5::types::FixedAscii::<8>::from_ascii(b"abc").unwrap())
                .unwrap();
        }
        let f = open(&path).unwrap();
        let (v, shape, dtype) = read_f32_raw(&f.dataset("x").unwrap()).unwrap();
        assert_eq!((shape, dtype), (vec![2, 2], Dtype::F64));
        assert_eq!(v, wide.iter().map(|&x| x as f32).collect::<Vec<_>>());
        assert_eq!(read_flags(&f.dataset("flags").unwrap()).unwrap(), vec![true, false, true]);
        assert_eq!(read_flags(&f.dataset("ints").unwrap()).unwrap(), vec![false, true, false]);
        let json = |k: &str| read_scalar_json(&f.dataset(k).unwrap()).unwrap();
        assert_eq!(json("name"), Some(serde_json::json!("sac")));
        assert_eq!(json("iter"), Some(serde_json::json!(42)));
        assert_eq!(json("fixed"), Some(serde_json::json!("abc")));
        assert_eq!(json("x"), None);
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    /// Opening a file this process still holds open (with HDF5's default locking) works: the
    /// lock-free open falls back instead of failing on "locking flag values don't match".
    #[test]
    fn read_only_open_while_the_file_is_open_elsewhere_in_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("held.hdf5");
        let held = hdf5::File::create(&path).unwrap();
        write_f32_2d(&held, "x", &Array2::zeros((3, 2))).unwrap();
        held.flush().unwrap();
        let f = open(&path).unwrap();
        assert_eq!(read_f32_2d(&f, "x").unwrap().dim(), (3, 2));
    }
}
