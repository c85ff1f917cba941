//! Environment names: which task, which Gymnasium (or Gymnasium-Robotics) version.

use std::fmt;
use std::str::FromStr;

use crate::error::EnvError;
use crate::maze::MazeMap;

/// The task: a locomotion robot, Gymnasium-Robotics' ant in one of its mazes, or its Franka
/// robot in the kitchen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Task {
    HalfCheetah,
    Hopper,
    Walker2d,
    /// `AntMaze_<map>` (Gymnasium-Robotics 1.4.2, v4 only: Minari's datasets were made on v4).
    AntMaze(MazeMap),
    /// `FrankaKitchen` (Gymnasium-Robotics 1.4.2, v1 only: Minari's D4RL/kitchen datasets).
    FrankaKitchen,
}

/// Gymnasium's definition version. `V4` has the rewards and constants of the old `-v2` that
/// D4RL's data came from; `V5` is the current one. `V1` is FrankaKitchen's only version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Version {
    V1,
    V4,
    V5,
}

/// One of the six environments, e.g. `Hopper-v4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct EnvId {
    pub task: Task,
    pub version: Version,
}

impl Task {
    pub const LOCOMOTION: [Task; 3] = [Task::HalfCheetah, Task::Hopper, Task::Walker2d];

    /// Gymnasium's spelling, e.g. `HalfCheetah`, `AntMaze_Medium`.
    pub fn gym_name(self) -> String {
        match self {
            Task::HalfCheetah => "HalfCheetah".into(),
            Task::Hopper => "Hopper".into(),
            Task::Walker2d => "Walker2d".into(),
            Task::AntMaze(map) => format!("AntMaze_{}", map.gym_name()),
            Task::FrankaKitchen => "FrankaKitchen".into(),
        }
    }

    /// D4RL's family name, e.g. `halfcheetah` (as in `halfcheetah-medium-v2`), `antmaze`,
    /// `kitchen`.
    pub fn d4rl_name(self) -> &'static str {
        match self {
            Task::HalfCheetah => "halfcheetah",
            Task::Hopper => "hopper",
            Task::Walker2d => "walker2d",
            Task::AntMaze(_) => "antmaze",
            Task::FrankaKitchen => "kitchen",
        }
    }

    fn parse(name: &str) -> Option<Task> {
        let lower = name.to_ascii_lowercase();
        if let Some(map) = lower.strip_prefix("antmaze_") {
            return MazeMap::parse(map).map(Task::AntMaze);
        }
        if lower == "frankakitchen" {
            return Some(Task::FrankaKitchen);
        }
        // Accept Gymnasium's, D4RL's and file-name spellings: HalfCheetah, halfcheetah, half_cheetah.
        let folded: String = lower.chars().filter(|c| !matches!(c, '_' | '-')).collect();
        Task::LOCOMOTION.into_iter().find(|t| t.d4rl_name() == folded)
    }
}

impl EnvId {
    pub const ALL: [EnvId; 6] = [
        EnvId { task: Task::HalfCheetah, version: Version::V4 },
        EnvId { task: Task::HalfCheetah, version: Version::V5 },
        EnvId { task: Task::Hopper, version: Version::V4 },
        EnvId { task: Task::Hopper, version: Version::V5 },
        EnvId { task: Task::Walker2d, version: Version::V4 },
        EnvId { task: Task::Walker2d, version: Version::V5 },
    ];

    pub fn new(task: Task, version: Version) -> Self {
        EnvId { task, version }
    }

    /// `AntMaze_<map>-v4`.
    pub fn ant_maze(map: MazeMap) -> Self {
        EnvId { task: Task::AntMaze(map), version: Version::V4 }
    }

    /// `FrankaKitchen-v1`.
    pub fn franka_kitchen() -> Self {
        EnvId { task: Task::FrankaKitchen, version: Version::V1 }
    }

    /// Every environment this crate implements: the six locomotion ones, the mazes, the
    /// kitchen.
    pub fn every() -> Vec<EnvId> {
        let mazes = MazeMap::ALL.into_iter().map(EnvId::ant_maze);
        EnvId::ALL.into_iter().chain(mazes).chain([EnvId::franka_kitchen()]).collect()
    }

    /// The environment to evaluate a D4RL dataset in: `hopper-medium-v2` -> `Hopper-v4`
    /// (Gymnasium's v4 has the rewards and constants of the `-v2` that recorded the data).
    /// Also accepts file names such as `hopper_medium_replay-v2.hdf5`.
    pub fn for_d4rl_dataset(name: &str) -> Option<EnvId> {
        let stem = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
        let task = Task::LOCOMOTION.into_iter().find(|t| {
            let d4rl = t.d4rl_name();
            stem.starts_with(d4rl) || (*t == Task::HalfCheetah && stem.starts_with("half_cheetah"))
        })?;
        Some(EnvId::new(task, Version::V4))
    }

    /// The known names, for error messages.
    pub fn known_names() -> String {
        EnvId::every().iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for EnvId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = match self.version {
            Version::V1 => 1,
            Version::V4 => 4,
            Version::V5 => 5,
        };
        write!(f, "{}-v{v}", self.task.gym_name())
    }
}

impl FromStr for EnvId {
    type Err = EnvError;

    /// Case-insensitive: `Hopper-v4`, `hopper-v4`, `half_cheetah-v5`, `walker2d-v5`,
    /// `FrankaKitchen-v1`.
    fn from_str(s: &str) -> Result<Self, EnvError> {
        let unknown = || EnvError::UnknownEnv { name: s.to_string(), known: EnvId::known_names() };
        let (task, version) = s.trim().rsplit_once("-v").ok_or_else(unknown)?;
        let task = Task::parse(task).ok_or_else(unknown)?;
        let kitchen = task == Task::FrankaKitchen;
        let version = match version {
            "1" if kitchen => Version::V1,
            "4" if !kitchen => Version::V4,
            "5" if !kitchen && !matches!(task, Task::AntMaze(_)) => Version::V5,
            _ => return Err(unknown()),
        };
        Ok(EnvId { task, version })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gymnasium_and_d4rl_spellings() {
        let cases = [
            ("HalfCheetah-v4", Task::HalfCheetah, Version::V4),
            ("halfcheetah-v5", Task::HalfCheetah, Version::V5),
            ("half_cheetah-v4", Task::HalfCheetah, Version::V4),
            ("Hopper-v5", Task::Hopper, Version::V5),
            ("WALKER2D-v4", Task::Walker2d, Version::V4),
        ];
        for (name, task, version) in cases {
            assert_eq!(name.parse::<EnvId>().unwrap(), EnvId::new(task, version), "{name}");
        }
    }

    #[test]
    fn display_round_trips_for_every_environment() {
        for id in EnvId::every() {
            assert_eq!(id.to_string().parse::<EnvId>().unwrap(), id);
        }
        assert_eq!(EnvId::ALL[0].to_string(), "HalfCheetah-v4");
        let medium = EnvId::ant_maze(MazeMap::MediumDiverseGR);
        assert_eq!(medium.to_string(), "AntMaze_Medium_Diverse_GR-v4");
        assert_eq!("antmaze_medium_diverse_gr-v4".parse::<EnvId>().unwrap(), medium);
        let kitchen = EnvId::franka_kitchen();
        assert_eq!(kitchen.to_string(), "FrankaKitchen-v1");
        assert_eq!("frankakitchen-v1".parse::<EnvId>().unwrap(), kitchen);
        assert_eq!(EnvId::every().last(), Some(&kitchen));
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        for bad in [
            "Ant-v4",
            "Hopper-v3",
            "hopper",
            "",
            "Hopper-v44",
            "AntMaze_Tiny-v4",
            "AntMaze_UMaze-v5",
            "FrankaKitchen-v0",
            "FrankaKitchen-v4",
            "Kitchen-v1",
            "Hopper-v1",
            "AntMaze_UMaze-v1",
        ] {
            let err = bad.parse::<EnvId>().unwrap_err().to_string();
            assert!(err.contains("Walker2d-v5") && err.contains("AntMaze_Large-v4"), "{err}");
            assert!(err.contains("FrankaKitchen-v1"), "{err}");
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
    }

    #[test]
    fn d4rl_dataset_names_map_to_v4() {
        let hop = EnvId::new(Task::Hopper, Version::V4);
        assert_eq!(EnvId::for_d4rl_dataset("hopper-medium-v2"), Some(hop));
        assert_eq!(
            EnvId::for_d4rl_dataset("/data/halfcheetah_medium_replay-v2.hdf5").map(|i| i.task),
            Some(Task::HalfCheetah)
        );
        assert_eq!(EnvId::for_d4rl_dataset("antmaze-umaze-v2"), None);
    }
}
