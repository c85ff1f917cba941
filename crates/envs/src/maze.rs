//! Gymnasium-Robotics' mazes (`gymnasium_robotics/envs/maze/{maps,maze_v4}.py`, version
//! 1.4.2): the maps, the cell geometry, the MJCF walls added to the agent's model, and the
//! goal and start cells with their noise, drawn from NumPy's generator in the package's order.

use std::fmt;

use crate::error::EnvError;
use crate::np_random::NpRandom;

/// Cells are squares of this side (AntMaze's `maze_size_scaling`).
pub const ANT_MAZE_SCALING: f64 = 4.0;
/// Wall height before scaling (`maze_height`).
pub const ANT_MAZE_HEIGHT: f64 = 0.5;
/// Start and goal positions get U(-r, r) * scaling on x and y (`position_noise_range`).
pub const POSITION_NOISE_RANGE: f64 = 0.25;
/// The goal counts as reached within this distance (sparse reward, success, termination).
pub const GOAL_RADIUS: f64 = 0.45;

/// One of Gymnasium-Robotics' registered maze maps (`maps.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum MazeMap {
    UMaze,
    Open,
    OpenDiverseG,
    OpenDiverseGR,
    Medium,
    MediumDiverseG,
    MediumDiverseGR,
    Large,
    LargeDiverseG,
    LargeDiverseGR,
}

// Rows of the maps: 1 wall, 0 free, r start, g goal, c either (`maps.py`).
const U_MAZE: [&str; 5] = ["11111", "10001", "11101", "10001", "11111"];
const OPEN: [&str; 5] = ["1111111", "1000001", "1000001", "1000001", "1111111"];
const OPEN_DIVERSE_G: [&str; 5] = ["1111111", "1rgggg1", "1ggggg1", "1ggggg1", "1111111"];
const OPEN_DIVERSE_GR: [&str; 5] = ["1111111", "1ccccc1", "1ccccc1", "1ccccc1", "1111111"];
const MEDIUM: [&str; 8] = [
    "11111111", "10011001", "10010001", "11000111", "10010001", "10100101", "10001001", "11111111",
];
const MEDIUM_DIVERSE_G: [&str; 8] = [
    "11111111", "1r011001", "100100g1", "11000111", "10010001", "1g100101", "10001g01", "11111111",
];
const MEDIUM_DIVERSE_GR: [&str; 8] = [
    "11111111", "1c011001", "100100c1", "11000111", "10010001", "1c100101", "10001c01", "11111111",
];
const LARGE: [&str; 9] = [
    "111111111111",
    "100001000001",
    "101101010101",
    "100000010001",
    "101111011101",
    "100101000001",
    "110101010111",
    "100100010001",
    "111111111111",
];
const LARGE_DIVERSE_G: [&str; 9] = [
    "111111111111",
    "1r0001g00001",
    "101101010101",
    "10000g0100g1",
    "101111011101",
    "10g101000001",
    "110101010111",
    "1001g0g10g01",
    "111111111111",
];
const LARGE_DIVERSE_GR: [&str; 9] = [
    "111111111111",
    "1c0001c00001",
    "101101010101",
    "10000c0100c1",
    "101111011101",
    "10c101000001",
    "110101010111",
    "1001c0c10c01",
    "111111111111",
];

impl MazeMap {
    pub const ALL: [MazeMap; 10] = [
        MazeMap::UMaze,
        MazeMap::Open,
        MazeMap::OpenDiverseG,
        MazeMap::OpenDiverseGR,
        MazeMap::Medium,
        MazeMap::MediumDiverseG,
        MazeMap::MediumDiverseGR,
        MazeMap::Large,
        MazeMap::LargeDiverseG,
        MazeMap::LargeDiverseGR,
    ];

    /// The part of the environment id after `AntMaze_`, e.g. `Medium_Diverse_GR`.
    pub fn gym_name(self) -> &'static str {
        match self {
            MazeMap::UMaze => "UMaze",
            MazeMap::Open => "Open",
            MazeMap::OpenDiverseG => "Open_Diverse_G",
            MazeMap::OpenDiverseGR => "Open_Diverse_GR",
            MazeMap::Medium => "Medium",
            MazeMap::MediumDiverseG => "Medium_Diverse_G",
            MazeMap::MediumDiverseGR => "Medium_Diverse_GR",
            MazeMap::Large => "Large",
            MazeMap::LargeDiverseG => "Large_Diverse_G",
            MazeMap::LargeDiverseGR => "Large_Diverse_GR",
        }
    }

    /// The map's rows (`maps.py`).
    pub fn rows(self) -> &'static [&'static str] {
        match self {
            MazeMap::UMaze => &U_MAZE,
            MazeMap::Open => &OPEN,
            MazeMap::OpenDiverseG => &OPEN_DIVERSE_G,
            MazeMap::OpenDiverseGR => &OPEN_DIVERSE_GR,
            MazeMap::Medium => &MEDIUM,
            MazeMap::MediumDiverseG => &MEDIUM_DIVERSE_G,
            MazeMap::MediumDiverseGR => &MEDIUM_DIVERSE_GR,
            MazeMap::Large => &LARGE,
            MazeMap::LargeDiverseG => &LARGE_DIVERSE_G,
            MazeMap::LargeDiverseGR => &LARGE_DIVERSE_GR,
        }
    }

    /// The registered time limit (`max_episode_steps`): 700 for UMaze and Open, else 1000.
    pub fn max_episode_steps(self) -> usize {
        match self {
            MazeMap::UMaze | MazeMap::Open | MazeMap::OpenDiverseG | MazeMap::OpenDiverseGR => 700,
            _ => 1000,
        }
    }

    pub fn parse(name: &str) -> Option<MazeMap> {
        MazeMap::ALL.into_iter().find(|m| m.gym_name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for MazeMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.gym_name())
    }
}

/// What a cell of a map is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    Wall,
    Free,
    Reset,
    Goal,
    Combined,
}

impl Cell {
    fn parse(c: char) -> Option<Cell> {
        Some(match c {
            '1' => Cell::Wall,
            '0' => Cell::Free,
            'r' | 'R' => Cell::Reset,
            'g' | 'G' => Cell::Goal,
            'c' | 'C' => Cell::Combined,
            _ => return None,
        })
    }
}

/// A maze as `Maze.make_maze` decodes it: cells, centre, and the goal and start positions.
#[derive(Debug, Clone, PartialEq)]
pub struct Maze {
    cells: Vec<Vec<Cell>>,
    scaling: f64,
    height: f64,
    x_center: f64,
    y_center: f64,
    goal_locations: Vec<[f64; 2]>,
    reset_locations: Vec<[f64; 2]>,
}

impl Maze {
    /// Decode a map given as rows of `1 0 r g c` (a registered map's `rows()`, or a custom one
    /// such as a dataset's evaluation map). Every row must have the same length.
    pub fn from_rows<S: AsRef<str>>(
        rows: &[S],
        scaling: f64,
        height: f64,
    ) -> Result<Maze, EnvError> {
        let bad = |why: String| EnvError::Invalid(format!("maze map: {why}"));
        let cells: Vec<Vec<Cell>> = rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                row.as_ref()
                    .chars()
                    .filter(|c| !c.is_whitespace() && *c != ',')
                    .map(|c| {
                        Cell::parse(c).ok_or_else(|| {
                            bad(format!("row {i} has `{c}`; cells are 1 (wall), 0, r, g or c"))
                        })
                    })
                    .collect()
            })
            .collect::<Result<_, _>>()?;
        let width = cells.first().map_or(0, Vec::len);
        if width == 0 || cells.iter().any(|r| r.len() != width) {
            return Err(bad("it must be a non-empty rectangle (rows of equal length)".into()));
        }
        let (length, width) = (cells.len(), width);
        let x_center = width as f64 / 2.0 * scaling;
        let y_center = length as f64 / 2.0 * scaling;
        let mut maze = Maze {
            cells,
            scaling,
            height,
            x_center,
            y_center,
            goal_locations: Vec::new(),
            reset_locations: Vec::new(),
        };
        let (mut goals, mut resets, mut combined, mut empty) = (vec![], vec![], vec![], vec![]);
        for (i, row) in maze.cells.iter().enumerate() {
            for (j, cell) in row.iter().enumerate() {
                let xy = maze.cell_xy(i, j);
                match cell {
                    Cell::Wall => {}
                    Cell::Reset => resets.push(xy),
                    Cell::Goal => goals.push(xy),
                    Cell::Combined => combined.push(xy),
                    Cell::Free => empty.push(xy),
                }
            }
        }
        // Free cells stand in for the missing kinds, as make_maze does.
        if goals.is_empty() && resets.is_empty() && combined.is_empty() {
            combined = empty;
        } else if resets.is_empty() && combined.is_empty() {
            resets = empty;
        } else if goals.is_empty() && combined.is_empty() {
            goals = empty;
        }
        goals.extend(&combined);
        resets.extend(&combined);
        if goals.is_empty() || resets.is_empty() {
            return Err(bad("it has no free cell for the goal or the start".into()));
        }
        // A start is drawn until it is more than half a cell from the (noisy) goal: another
        // cell always is (cells are a whole cell apart, the noise is at most a quarter per axis).
        if goals.iter().any(|g| resets.iter().all(|r| r == g)) {
            return Err(bad("a goal cell has no start cell other than itself".into()));
        }
        maze.goal_locations = goals;
        maze.reset_locations = resets;
        Ok(maze)
    }

    /// A registered map at AntMaze's scale.
    pub fn ant(map: MazeMap) -> Maze {
        Maze::from_rows(map.rows(), ANT_MAZE_SCALING, ANT_MAZE_HEIGHT).expect("registered map")
    }

    /// The centre of cell (row i, column j) in the simulation's x, y (`cell_rowcol_to_xy`).
    pub fn cell_xy(&self, i: usize, j: usize) -> [f64; 2] {
        [
            (j as f64 + 0.5) * self.scaling - self.x_center,
            self.y_center - (i as f64 + 0.5) * self.scaling,
        ]
    }

    /// The cell (row, column) holding a point (`cell_xy_to_rowcol`).
    pub fn xy_cell(&self, xy: [f64; 2]) -> (i64, i64) {
        let i = ((self.y_center - xy[1]) / self.scaling).floor() as i64;
        let j = ((xy[0] + self.x_center) / self.scaling).floor() as i64;
        (i, j)
    }

    pub fn cells(&self) -> &[Vec<Cell>] {
        &self.cells
    }
    pub fn scaling(&self) -> f64 {
        self.scaling
    }
    pub fn goal_locations(&self) -> &[[f64; 2]] {
        &self.goal_locations
    }
    pub fn reset_locations(&self) -> &[[f64; 2]] {
        &self.reset_locations
    }

    /// Whether cell (i, j) exists and is not a wall.
    pub fn is_free(&self, i: i64, j: i64) -> bool {
        i >= 0
            && j >= 0
            && self
                .cells
                .get(i as usize)
                .and_then(|r| r.get(j as usize))
                .is_some_and(|c| *c != Cell::Wall)
    }

    /// The (row, column) of the wall cells, row by row (the order of their geoms).
    fn wall_cells(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.cells.iter().enumerate().flat_map(|(i, row)| {
            row.iter().enumerate().filter(|(_, c)| **c == Cell::Wall).map(move |(j, _)| (i, j))
        })
    }

    /// The centres of the wall cells, in the order of their geoms.
    pub fn walls(&self) -> Vec<[f64; 2]> {
        self.wall_cells().map(|(i, j)| self.cell_xy(i, j)).collect()
    }

    /// The agent's MJCF with the walls and the target site appended to its worldbody, in
    /// make_maze's order (blocks row by row, then the site): the order of geoms decides the
    /// order of contacts, so it must match for identical physics.
    pub fn mjcf(&self, agent_xml: &str) -> Result<String, EnvError> {
        let at = agent_xml.rfind("</worldbody>").ok_or_else(|| {
            EnvError::Invalid("the agent's model has no </worldbody> to add the maze to".into())
        })?;
        let (s, h) = (self.scaling, self.height);
        let mut extra = String::new();
        for (i, j) in self.wall_cells() {
            let [x, y] = self.cell_xy(i, j);
            extra.push_str(&format!(
                "<geom name=\"block_{i}_{j}\" pos=\"{x} {y} {}\" size=\"{} {} {}\" type=\"box\" \
                 material=\"\" contype=\"1\" conaffinity=\"1\" rgba=\"0.7 0.5 0.3 1.0\" />\n",
                h / 2.0 * s,
                0.5 * s,
                0.5 * s,
                h / 2.0 * s
            ));
        }
        extra.push_str(&format!(
            "<site name=\"target\" pos=\"0 0 {}\" size=\"{}\" rgba=\"1 0 0 0.7\" type=\"sphere\" />\n",
            h / 2.0 * s,
            0.2 * s
        ));
        Ok(format!("{}{extra}{}", &agent_xml[..at], &agent_xml[at..]))
    }

    /// `add_xy_position_noise`: x then y, each + U(-r, r) * scaling.
    pub fn add_position_noise(&self, rng: &mut NpRandom, mut xy: [f64; 2]) -> [f64; 2] {
        let noise_x = rng.uniform(-POSITION_NOISE_RANGE, POSITION_NOISE_RANGE) * self.scaling;
        let noise_y = rng.uniform(-POSITION_NOISE_RANGE, POSITION_NOISE_RANGE) * self.scaling;
        xy[0] += noise_x;
        xy[1] += noise_y;
        xy
    }

    /// `generate_target_goal`: a goal cell's centre, uniformly.
    pub fn draw_goal_cell(&self, rng: &mut NpRandom) -> [f64; 2] {
        self.goal_locations[rng.integers(0, self.goal_locations.len() as i64) as usize]
    }

    /// `generate_reset_pos`: a start cell's centre farther than half a cell from the goal.
    pub fn draw_reset_cell(
        &self,
        rng: &mut NpRandom,
        goal: [f64; 2],
    ) -> Result<[f64; 2], EnvError> {
        let far = |p: [f64; 2]| distance(p, goal) > 0.5 * self.scaling;
        if !self.reset_locations.iter().any(|&p| far(p)) {
            // Python would loop for ever here.
            return Err(EnvError::Invalid(
                "maze map: every start cell is within half a cell of the goal".into(),
            ));
        }
        let mut reset = goal;
        while !far(reset) {
            reset =
                self.reset_locations[rng.integers(0, self.reset_locations.len() as i64) as usize];
        }
        Ok(reset)
    }
}

/// The goal-reaching task's view of its goal: the offset from the torso to `goal`, turned into
/// the torso's heading frame (the yaw of the free joint's quaternion `qpos[3..7]`), so that
/// "walk towards the goal" reads the same whichever way the ant faces. (A world-frame offset
/// left the ant to learn that rotation itself: 280k SAC steps taught it to stand, not to walk
/// towards goals; docs/results/goal-reaching-ant.md.)
pub fn heading_offset(qpos: &[f64], goal: [f64; 2]) -> [f64; 2] {
    let (w, x, y, z) = (qpos[3], qpos[4], qpos[5], qpos[6]);
    let yaw = (2.0 * (w * z + x * y)).atan2(1.0 - 2.0 * (y * y + z * z));
    let (s, c) = yaw.sin_cos();
    let (dx, dy) = (goal[0] - qpos[0], goal[1] - qpos[1]);
    [c * dx + s * dy, -s * dx + c * dy]
}

/// `np.linalg.norm(a - b)` of two points.
pub fn distance(a: [f64; 2], b: [f64; 2]) -> f64 {
    let (dx, dy) = (a[0] - b[0], a[1] - b[1]);
    (dx * dx + dy * dy).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_offsets_turn_with_the_ant() {
        let goal = [3.0, 1.0];
        // Facing +x (identity quaternion): the world offset as it is.
        let facing_x = [1.0, 1.0, 0.75, 1.0, 0.0, 0.0, 0.0];
        let o = heading_offset(&facing_x, goal);
        assert!((o[0] - 2.0).abs() < 1e-12 && o[1].abs() < 1e-12);
        // Turned 90 degrees left (yaw pi/2): a goal 2 m along +x is 2 m to the ant's right.
        let h = std::f64::consts::FRAC_PI_4;
        let facing_y = [1.0, 1.0, 0.75, h.cos(), 0.0, 0.0, h.sin()];
        let o = heading_offset(&facing_y, goal);
        assert!(o[0].abs() < 1e-12 && (o[1] + 2.0).abs() < 1e-12, "{o:?}");
        // Distance is kept.
        assert!((distance(o, [0.0, 0.0]) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn u_maze_geometry_is_the_packages() {
        let maze = Maze::ant(MazeMap::UMaze);
        // 5 x 5 cells of 4 m: the centre cell (2, 2) is the origin.
        assert_eq!(maze.cell_xy(2, 2), [0.0, 0.0]);
        assert_eq!(maze.cell_xy(1, 1), [-4.0, 4.0]);
        assert_eq!(maze.xy_cell([-4.0, 4.0]), (1, 1));
        // No r/g/c cells: every free cell is both a goal and a start, row by row.
        assert_eq!(maze.goal_locations().len(), 7);
        assert_eq!(maze.goal_locations()[0], [-4.0, 4.0]);
        assert_eq!(maze.reset_locations(), maze.goal_locations());
        let xml = maze.mjcf("<mujoco><worldbody><body/></worldbody></mujoco>").unwrap();
        assert_eq!(xml.matches("type=\"box\"").count(), 18);
        assert!(xml.contains("name=\"block_0_0\" pos=\"-8 8 1\" size=\"2 2 1\""), "{xml}");
        assert!(xml.ends_with("</worldbody></mujoco>"));
    }

    #[test]
    fn diverse_maps_keep_their_marked_cells() {
        let g = Maze::ant(MazeMap::MediumDiverseG);
        assert_eq!(g.reset_locations().len(), 1);
        assert_eq!(g.goal_locations().len(), 3);
        let gr = Maze::ant(MazeMap::LargeDiverseGR);
        assert_eq!(gr.reset_locations(), gr.goal_locations());
        assert_eq!(gr.goal_locations().len(), 8);
    }

    #[test]
    fn bad_maps_are_refused_with_the_reason() {
        let err = Maze::from_rows(&["111", "1x1", "111"], 4.0, 0.5).unwrap_err().to_string();
        assert!(err.contains("`x`"), "{err}");
        let err = Maze::from_rows(&["111", "10", "111"], 4.0, 0.5).unwrap_err().to_string();
        assert!(err.contains("rectangle"), "{err}");
        let err = Maze::from_rows(&["111", "111"], 4.0, 0.5).unwrap_err().to_string();
        assert!(err.contains("no free cell"), "{err}");
        // One free cell: the start can never be away from the goal (Python would loop for ever).
        let err = Maze::from_rows(&["111", "101", "111"], 4.0, 0.5).unwrap_err().to_string();
        assert!(err.contains("no start cell other than itself"), "{err}");
    }
}
