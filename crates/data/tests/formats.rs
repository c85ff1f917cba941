//! Every layout the crate reads and writes, on files the tests write themselves.

mod common;

use common::sample_dataset;
use hdf5::filters::Filter;
use hdf5::types::{FloatSize, TypeDescriptor};
use ndarray::{Array1, Array2, array};
use ofql_data::{
    Dtype, Format, NextObs, TransitionOptions, Transitions, load, read_d4rl, read_minari,
    read_parquet, write_d4rl, write_minari, write_minari_infos, write_minari_with_layout,
    write_parquet, write_states_f64,
};

fn descriptor(file: &hdf5::File, key: &str) -> TypeDescriptor {
    file.dataset(key).unwrap().dtype().unwrap().to_descriptor().unwrap()
}

#[test]
fn d4rl_float32_file_round_trips_gzip_compressed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.hdf5");
    let data = sample_dataset();
    write_d4rl(&path, &data, Dtype::F32).unwrap();
    let file = hdf5::File::open(&path).unwrap();
    for key in
        ["observations", "actions", "rewards", "terminals", "next_observations", "infos/qpos"]
    {
        let ds = file.dataset(key).unwrap();
        assert!(ds.filters().iter().any(|f| matches!(f, Filter::Deflate(_))), "{key} not gzip");
    }
    assert_eq!(descriptor(&file, "observations"), TypeDescriptor::Float(FloatSize::U4));
    assert_eq!(descriptor(&file, "terminals"), TypeDescriptor::Boolean);
    assert_eq!(file.dataset("rewards").unwrap().shape(), vec![12]);
    assert_eq!(read_d4rl(&path).unwrap(), data);
}

#[test]
fn exact_states_are_added_as_float64() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.hdf5");
    let mut data = sample_dataset();
    let qpos = Array2::from_shape_fn((12, 4), |(i, j)| 0.1 * i as f64 + 1e-12 * j as f64);
    let qvel = Array2::from_shape_fn((12, 3), |(i, j)| -(i as f64) / 3.0 + j as f64);
    // Written with the data's own (f32) states, the file refuses a second set.
    write_d4rl(&path, &data, Dtype::F32).unwrap();
    let err = write_states_f64(&path, &qpos, &qvel).unwrap_err();
    assert!(format!("{err:#}").contains("infos"), "{err:#}");
    // Without them, the exact states go in as float64 and read back bit for bit.
    (data.qpos, data.qvel) = (None, None);
    let path = dir.path().join("e.hdf5");
    write_d4rl(&path, &data, Dtype::F32).unwrap();
    write_states_f64(&path, &qpos, &qvel).unwrap();
    let file = hdf5::File::open(&path).unwrap();
    assert_eq!(descriptor(&file, "infos/qpos"), TypeDescriptor::Float(FloatSize::U8));
    assert_eq!(file.dataset("infos/qpos").unwrap().read_2d::<f64>().unwrap(), qpos);
    assert_eq!(file.dataset("infos/qvel").unwrap().read_2d::<f64>().unwrap(), qvel);
    assert_eq!(read_d4rl(&path).unwrap().qpos.unwrap().dim(), (12, 4));
}

#[test]
fn d4rl_float64_file_reads_back_as_f32() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.hdf5");
    let data = sample_dataset();
    write_d4rl(&path, &data, Dtype::F64).unwrap();
    let file = hdf5::File::open(&path).unwrap();
    assert_eq!(descriptor(&file, "observations"), TypeDescriptor::Float(FloatSize::U8));
    assert_eq!(descriptor(&file, "infos/qvel"), TypeDescriptor::Float(FloatSize::U8));
    let back = read_d4rl(&path).unwrap();
    assert_eq!(back.dtype, Dtype::F64);
    assert_eq!(back, ofql_data::Dataset { dtype: Dtype::F64, ..data });
}

/// A file laid out as D4RL publishes it, written with raw hdf5 calls rather than our writer:
/// float64 values that f32 cannot hold, rewards of shape (N, 1), no next_observations,
/// int32 and string metadata next to policy weight arrays, extra `infos/` keys.
#[test]
fn published_layout_with_float64_and_column_rewards_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hopper_medium_replay-v2.hdf5");
    let obs = Array2::from_shape_fn((6, 11), |(i, j)| 0.1 * i as f64 + 0.01 * j as f64);
    let acts = Array2::from_shape_fn((6, 3), |(i, j)| (i as f64 - j as f64) / 3.0);
    let rewards = Array2::from_shape_fn((6, 1), |(i, _)| i as f64 / 7.0);
    {
        let f = hdf5::File::create(&path).unwrap();
        f.new_dataset_builder().deflate(4).with_data(&obs).create("observations").unwrap();
        f.new_dataset_builder().deflate(4).with_data(&acts).create("actions").unwrap();
        f.new_dataset_builder().deflate(4).with_data(&rewards).create("rewards").unwrap();
        let terms = array![false, false, true, false, false, false];
        let touts = array![false, false, false, false, true, false];
        f.new_dataset_builder().with_data(&terms).create("terminals").unwrap();
        f.new_dataset_builder().with_data(&touts).create("timeouts").unwrap();
        let infos = f.create_group("infos").unwrap();
        infos
            .new_dataset_builder()
            .with_data(&Array1::<f64>::zeros(6))
            .create("action_log_probs")
            .unwrap();
        infos.new_dataset_builder().with_data(&Array2::<f64>::ones((6, 6))).create("qpos").unwrap();
        let meta = f.create_group("metadata").unwrap();
        let s: hdf5::types::VarLenUnicode = "SAC".parse().unwrap();
        meta.new_dataset::<hdf5::types::VarLenUnicode>()
            .create("algorithm")
            .unwrap()
            .write_scalar(&s)
            .unwrap();
        meta.new_dataset::<i32>().create("iteration").unwrap().write_scalar(&1000).unwrap();
        let policy = meta.create_group("policy").unwrap();
        policy
            .new_dataset_builder()
            .with_data(&Array2::<f32>::ones((4, 4)))
            .create("fc0.weight")
            .unwrap();
    }
    let d = read_d4rl(&path).unwrap();
    assert_eq!(d.dtype, Dtype::F64);
    assert_eq!(d.observations, obs.mapv(|v| v as f32));
    assert_eq!(d.rewards, rewards.column(0).mapv(|v| v as f32));
    assert_eq!(d.actions, acts.mapv(|v| v as f32));
    assert!(d.next_observations.is_none() && d.qvel.is_none());
    assert_eq!(d.qpos.as_ref().unwrap().dim(), (6, 6));
    assert_eq!(d.metadata["algorithm"], "SAC");
    assert_eq!(d.metadata["iteration"], 1000);
    assert!(!d.metadata.contains_key("policy/fc0.weight"));
    assert_eq!(d.episodes().len(), 3);
    // qlearning_dataset: rows 4 (timeout) and 5 (last) are dropped.
    let t = Transitions::from_dataset(&d, TransitionOptions::default()).unwrap();
    assert_eq!(t.len(), 4);
    assert_eq!(t.dones, vec![0.0, 0.0, 1.0, 0.0]);
    assert_eq!(load(&path).unwrap().1, Format::D4rl);
}

#[test]
fn file_without_timeouts_is_read_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.hdf5");
    let mut data = sample_dataset();
    data.has_timeouts = false;
    data.timeouts.fill(false);
    write_d4rl(&path, &data, Dtype::F32).unwrap();
    assert!(!hdf5::File::open(&path).unwrap().link_exists("timeouts"));
    let back = read_d4rl(&path).unwrap();
    assert!(!back.has_timeouts);
    assert_eq!(back, data);
}

/// `infos/ctrl` (Minari's kitchen datasets record the controls this way): T + 1 rows per
/// episode, the reset's first; the replay reads the rows after each step, and only when every
/// episode has them.
#[test]
fn minari_infos_ctrl_is_read_after_each_step() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("D4RL/kitchen/test-v2");
    write_minari(&root, &sample_dataset(), "D4RL/kitchen/test-v2").unwrap();
    // Episodes of 4, 5 and 3 steps; value = 100 x episode + 10 x row + column.
    let ctrl: Vec<Array2<f64>> = [4, 5, 3]
        .iter()
        .enumerate()
        .map(|(e, &t)| Array2::from_shape_fn((t + 1, 2), |(r, c)| (100 * e + 10 * r + c) as f64))
        .collect();
    write_minari_infos(&root, "ctrl", &ctrl).unwrap();
    let full = ofql_data::read_minari_full_precision(&root).unwrap();
    let expected: Vec<f64> = ctrl
        .iter()
        .flat_map(|c| c.slice(ndarray::s![1.., ..]).iter().copied().collect::<Vec<_>>())
        .collect();
    assert_eq!(full.ctrl, expected);
    assert_eq!(full.ctrl.len(), 12 * 2);

    let wrong_rows = write_minari_infos(&root, "other", &ctrl[..2]).unwrap_err().to_string();
    assert!(wrong_rows.contains("3 episodes"), "{wrong_rows}");
    let short: Vec<Array2<f64>> =
        ctrl.iter().map(|c| c.slice(ndarray::s![1.., ..]).to_owned()).collect();
    let err = write_minari_infos(&root, "short", &short).unwrap_err().to_string();
    assert!(err.contains("expected 5"), "{err}");

    // One episode without it: no controls at all.
    let file = hdf5::File::open_rw(root.join("data/main_data.hdf5")).unwrap();
    file.group("episode_1/infos").unwrap().unlink("ctrl").unwrap();
    drop(file);
    assert!(ofql_data::read_minari_full_precision(&root).unwrap().ctrl.is_empty());
}

#[test]
fn minari_layout_round_trips_through_episodes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mujoco/hopper/test-v0");
    let data = sample_dataset();
    write_minari(&root, &data, "mujoco/hopper/test-v0").unwrap();
    let main = root.join("data/main_data.hdf5");
    let file = hdf5::File::open(&main).unwrap();
    let ep0 = file.group("episode_0").unwrap();
    assert_eq!(ep0.dataset("observations").unwrap().shape(), vec![5, 3]);
    assert_eq!(ep0.dataset("actions").unwrap().shape(), vec![4, 2]);
    assert_eq!(descriptor(&file, "episode_1/observations"), TypeDescriptor::Float(FloatSize::U8));
    assert_eq!(descriptor(&file, "episode_1/actions"), TypeDescriptor::Float(FloatSize::U4));
    assert_eq!(file.group("episode_2").unwrap().dataset("rewards").unwrap().shape(), vec![3]);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("data/metadata.json")).unwrap())
            .unwrap();
    assert_eq!(meta["total_episodes"], 3);
    assert_eq!(meta["total_steps"], 12);
    assert_eq!(meta["dataset_id"], "mujoco/hopper/test-v0");

    for path in [&root, &main] {
        let back = read_minari(path).unwrap();
        assert_eq!(back.observations, data.observations);
        assert_eq!(back.actions, data.actions);
        assert_eq!(back.rewards, data.rewards);
        assert_eq!(back.terminals, data.terminals);
        assert_eq!(back.timeouts, data.timeouts);
        assert_eq!(back.next_observations, data.next_observations);
        assert_eq!(back.metadata["total_steps"], 12);
    }
    assert_eq!(load(&root).unwrap().1, Format::Minari);
    assert_eq!(load(&main).unwrap().1, Format::Minari);
}

/// Minari's reference returns come from the dataset's metadata: both keys, neither, or a
/// clear error naming the file.
#[test]
fn minari_reference_scores_are_read_from_the_metadata() {
    use ofql_data::minari::reference_scores;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("mujoco/hopper/test-v0");
    write_minari(&root, &sample_dataset(), "mujoco/hopper/test-v0").unwrap();
    assert_eq!(reference_scores(&root).unwrap(), None, "written without reference scores");
    assert_eq!(reference_scores(&dir.path().join("elsewhere")).unwrap(), None);
    let meta_path = root.join("data/metadata.json");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    let with = |pairs: &[(&str, serde_json::Value)]| {
        let mut m = meta.clone();
        for (k, v) in pairs {
            m[*k] = v.clone();
        }
        std::fs::write(&meta_path, m.to_string()).unwrap();
        reference_scores(&root.join("data/main_data.hdf5"))
    };
    let both = [("ref_min_score", (-20.5).into()), ("ref_max_score", 3402.25.into())];
    assert_eq!(with(&both).unwrap(), Some((-20.5, 3402.25)));
    let err = with(&[("ref_min_score", 1.0.into())]).unwrap_err().to_string();
    assert!(err.contains("only one") && err.contains("metadata.json"), "{err}");
    let err = with(&[("ref_min_score", 5.0.into()), ("ref_max_score", 5.0.into())]).unwrap_err();
    assert!(err.to_string().contains("not above"), "{err}");
    let err = with(&[("ref_min_score", "low".into()), ("ref_max_score", 1.0.into())]).unwrap_err();
    assert!(err.to_string().contains("`ref_min_score` is \"low\""), "{err}");
    std::fs::write(&meta_path, "{ not json").unwrap();
    assert!(reference_scores(&root).unwrap_err().to_string().contains("not valid JSON"));
}

#[test]
fn minari_dictionary_observations_are_flattened_goal_last() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("D4RL/antmaze/test-v1");
    let data = sample_dataset(); // 3 observation columns: split as 1 + 1 + 1
    // Written in another order than the reader's: the reader's order must win.
    let layout = [("desired_goal", 1), ("achieved_goal", 1), ("observation", 1)];
    write_minari_with_layout(&root, &data, "D4RL/antmaze/test-v1", Some(&layout)).unwrap();
    let file = hdf5::File::open(root.join("data/main_data.hdf5")).unwrap();
    let dict = file.group("episode_0/observations").unwrap();
    assert_eq!(dict.dataset("observation").unwrap().shape(), vec![5, 1]);
    let back = read_minari(&root).unwrap();
    let column = |a: &Array2<f32>, j: usize| a.column(j).to_owned();
    // [achieved_goal, observation, desired_goal] = columns [1, 2, 0] of what was written.
    for (got, wrote) in [(0, 1), (1, 2), (2, 0)] {
        assert_eq!(column(&back.observations, got), column(&data.observations, wrote));
        let (b, d) =
            (back.next_observations.as_ref().unwrap(), data.next_observations.as_ref().unwrap());
        assert_eq!(column(b, got), column(d, wrote));
    }
    assert_eq!(back.metadata["observation_layout"], "achieved_goal+observation+desired_goal");

    // Episodes whose dictionaries differ are refused, naming both key sets.
    let other = dir.path().join("other");
    write_minari_with_layout(&other, &data, "x", Some(&layout)).unwrap();
    let file = hdf5::File::open_rw(other.join("data/main_data.hdf5")).unwrap();
    let dict = file.group("episode_1/observations").unwrap();
    dict.unlink("desired_goal").unwrap();
    drop((dict, file));
    let err = format!("{:#}", read_minari(&other).unwrap_err());
    assert!(err.contains("earlier episodes"), "{err}");
    // A layout whose widths do not add up to the data's is refused before writing.
    let err =
        write_minari_with_layout(&dir.path().join("bad"), &data, "x", Some(&[("observation", 2)]))
            .unwrap_err()
            .to_string();
    assert!(err.contains("3"), "{err}");
}

#[test]
fn minari_writer_needs_next_observations() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = sample_dataset();
    data.next_observations = None;
    let err = write_minari(dir.path(), &data, "x").unwrap_err().to_string();
    assert!(err.contains("no `next_observations`"), "{err}");
}

#[test]
fn parquet_export_and_import_give_identical_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.parquet");
    let mut data = sample_dataset();
    data.dtype = Dtype::F64;
    write_parquet(&path, &data).unwrap();
    use polars::prelude::SerReader;
    let df =
        polars::prelude::ParquetReader::new(std::fs::File::open(&path).unwrap()).finish().unwrap();
    let names: Vec<String> = df.get_column_names().iter().map(|s| s.to_string()).collect();
    assert_eq!(
        names,
        [
            "observations",
            "actions",
            "rewards",
            "terminals",
            "timeouts",
            "next_observations",
            "infos/qpos",
            "infos/qvel"
        ]
    );
    assert_eq!(
        df.column("observations").unwrap().dtype(),
        &polars::prelude::DataType::Array(Box::new(polars::prelude::DataType::Float32), 3)
    );
    assert_eq!(read_parquet(&path).unwrap(), data);
    assert_eq!(load(&path).unwrap().1, Format::Parquet);
}

#[test]
fn parquet_with_list_columns_and_float64_is_imported() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lists.parquet");
    let rows: Vec<Series> =
        (0..4).map(|i| Series::new("".into(), [i as f64, -(i as f64)])).collect();
    let mut df = DataFrame::new(
        4,
        vec![
            Column::new("observations".into(), rows.clone()),
            Column::new("actions".into(), vec![Series::new("".into(), [0.5f64]); 4]),
            Column::new("rewards".into(), [1.0f64, 2.0, 3.0, 4.0]),
            Column::new("terminals".into(), [false, false, true, false]),
        ],
    )
    .unwrap();
    ParquetWriter::new(std::fs::File::create(&path).unwrap()).finish(&mut df).unwrap();
    let d = read_parquet(&path).unwrap();
    assert_eq!(d.observations, array![[0.0, 0.0], [1.0, -1.0], [2.0, -2.0], [3.0, -3.0]]);
    assert_eq!(d.actions, Array2::from_elem((4, 1), 0.5));
    assert_eq!(d.rewards, array![1.0, 2.0, 3.0, 4.0]);
    assert!(!d.has_timeouts);
}

/// The Hugging Face mirror `edbeeching/decision_transformer_gym_replay`: one row per episode,
/// list columns observations (T x obs_dim), actions (T x act_dim), rewards (T), dones (T).
#[test]
fn hf_mirror_episode_layout_is_read() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("halfcheetah-medium-v2.parquet");
    let lens = [3usize, 2];
    let mut step = 0;
    let mut obs = Vec::new();
    let mut acts = Vec::new();
    let mut rews = Vec::new();
    let mut dones = Vec::new();
    for (e, &t) in lens.iter().enumerate() {
        let steps: Vec<Series> =
            (0..t).map(|k| Series::new("".into(), [(step + k) as f32, 0.5])).collect();
        obs.push(Series::new("".into(), steps));
        let a: Vec<Series> =
            (0..t).map(|k| Series::new("".into(), [-((step + k) as f32)])).collect();
        acts.push(Series::new("".into(), a));
        rews.push(Series::new("".into(), (0..t).map(|k| (step + k) as f32).collect::<Vec<_>>()));
        // Episode 0 ends by the time limit, episode 1 in a terminal state.
        dones
            .push(Series::new("".into(), (0..t).map(|k| e == 1 && k == t - 1).collect::<Vec<_>>()));
        step += t;
    }
    let mut df = DataFrame::new(
        2,
        vec![
            Column::new("observations".into(), obs),
            Column::new("actions".into(), acts),
            Column::new("rewards".into(), rews),
            Column::new("dones".into(), dones),
        ],
    )
    .unwrap();
    ParquetWriter::new(std::fs::File::create(&path).unwrap()).finish(&mut df).unwrap();

    let d = read_parquet(&path).unwrap();
    assert_eq!(d.len(), 5);
    assert_eq!(d.observations.column(0).to_vec(), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    assert_eq!(d.actions.column(0).to_vec(), vec![0.0, -1.0, -2.0, -3.0, -4.0]);
    assert_eq!(d.terminals.to_vec(), vec![false, false, false, false, true]);
    assert_eq!(d.timeouts.to_vec(), vec![false, false, true, false, false]);
    let eps: Vec<_> = d.episodes().iter().map(|e| (e.len(), e.ret)).collect();
    assert_eq!(eps, vec![(3, 3.0), (2, 7.0)]);
    let t = Transitions::from_dataset(
        &d,
        TransitionOptions { next_obs: NextObs::Shifted, ..Default::default() },
    )
    .unwrap();
    assert_eq!(t.rewards, vec![0.0, 1.0, 3.0]);
}
