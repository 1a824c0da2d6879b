"""The apartment's base: occupancy grid, planner, and a Nav2-like goal follower (a mixin of
ApartmentWorld, which owns the state and the lock).

The base is a kinematic unicycle (velocity and acceleration limits) carried by a mocap body; its
footprint (a disk) is checked against the exact obstacle footprints every step and a motion into
an obstacle is refused and counted. ``set_goal`` is the Nav2 stand-in, and behaves like Nav2 where
the navigator can tell: Dijkstra on the occupancy grid (lethal cells within the inflation radius,
a cost ramp beyond it), a pure-pursuit controller, then an in-place turn to the goal yaw; the goal
checker ends the goal once position AND heading are within tolerance (Nav2's defaults 0.25 m,
0.25 rad). /cmd_vel (``set_velocity``) never drops the goal: while a goal is active, the last
writer wins each controller period, so the two publishers fight, as on a Nav2 robot.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from mimo_embodied_ros.core.navmap import GridSpec
from mimo_embodied_sim.apartment_scene import (
    APARTMENT_SIZE,
    FREE,
    GRID_MARGIN,
    OCCUPIED,
    RESOLUTION,
    UNKNOWN,
    _wrap,
)
from mimo_embodied_sim.tabletop import mujoco


class ApartmentBase:
    """Grid, planner, goal follower and kinematics of the apartment's base."""

    GOAL_XY_TOLERANCE = 0.25  # goal checker defaults (Nav2's SimpleGoalChecker)
    GOAL_YAW_TOLERANCE = 0.25
    CONTROLLER_PRECISION_M = 0.08  # the controller aims this close before turning in place
    CONTROLLER_PERIOD_S = 0.05  # a /cmd_vel this recent overrides the controller (they fight)
    LOOKAHEAD_M = 0.35
    ROTATE_IN_PLACE_RAD = math.radians(40.0)
    MAX_SUBSTEP_S = 0.02
    STUCK_AFTER_S = 5.0  # no 5 cm / 0.1 rad of motion for this long: the goal fails "stuck"

    def clearance(self, x: float, y: float) -> float:
        """Distance from a floor point to the nearest obstacle footprint (exact geometry)."""
        point = np.array([x, y])
        box = np.maximum(np.maximum(self._box_lo - point, point - self._box_hi), 0.0)
        distance = float(np.min(np.hypot(box[:, 0], box[:, 1])))
        if len(self._disks):
            disk = np.hypot(*(self._disks[:, :2] - point).T) - self._disks[:, 2]
            distance = min(distance, float(np.min(np.maximum(disk, 0.0))))
        return distance


    # -- occupancy grid and planner -----------------------------------------------------------

    def grid(self) -> tuple[np.ndarray, GridSpec]:
        """(H, W) int8 occupancy (row 0 at the origin corner, OccupancyGrid order: 0 free, 100
        occupied, -1 unknown outside the walls) and its GridSpec."""
        return self._grid.copy(), self._spec

    def cell_center(self, col: int, row: int) -> tuple[float, float]:
        return (self._spec.origin_x + (col + 0.5) * RESOLUTION,
                self._spec.origin_y + (row + 0.5) * RESOLUTION)

    def _cell_of(self, x: float, y: float) -> tuple[int, int]:
        return (math.floor((x - self._spec.origin_x) / RESOLUTION),
                math.floor((y - self._spec.origin_y) / RESOLUTION))

    def _rasterise(self) -> tuple[np.ndarray, GridSpec]:
        """Cells any obstacle footprint overlaps are occupied; free inside the walls, unknown
        outside."""
        width = round((APARTMENT_SIZE[0] + 2 * GRID_MARGIN) / RESOLUTION)
        height = round((APARTMENT_SIZE[1] + 2 * GRID_MARGIN) / RESOLUTION)
        spec = GridSpec(RESOLUTION, width, height, -GRID_MARGIN, -GRID_MARGIN, 0.0)
        x0 = spec.origin_x + np.arange(width) * RESOLUTION  # cell lower edges
        y0 = spec.origin_y + np.arange(height) * RESOLUTION
        inside_x = (x0 + RESOLUTION / 2 > 0) & (x0 + RESOLUTION / 2 < APARTMENT_SIZE[0])
        inside_y = (y0 + RESOLUTION / 2 > 0) & (y0 + RESOLUTION / 2 < APARTMENT_SIZE[1])
        grid = np.where(inside_y[:, None] & inside_x[None, :], FREE, UNKNOWN).astype(np.int8)
        eps = 1e-6
        cx, cy = np.meshgrid(x0 + RESOLUTION / 2, y0 + RESOLUTION / 2)
        for part in self._obstacles:
            if part.kind == "box":
                lo = np.array(part.center[:2]) - part.size[:2]
                hi = np.array(part.center[:2]) + part.size[:2]
                cols = (x0 + RESOLUTION > lo[0] + eps) & (x0 < hi[0] - eps)
                rows = (y0 + RESOLUTION > lo[1] + eps) & (y0 < hi[1] - eps)
                grid[np.ix_(rows, cols)] = OCCUPIED
            else:
                # Distance from the disk centre to each cell square.
                dx = np.maximum(np.abs(cx - part.center[0]) - RESOLUTION / 2, 0.0)
                dy = np.maximum(np.abs(cy - part.center[1]) - RESOLUTION / 2, 0.0)
                grid[np.hypot(dx, dy) < part.size[0] - eps] = OCCUPIED
        return grid, spec

    def _build_planner(self) -> None:
        """Dijkstra graph over non-lethal cells, 8-connected, with a cost that grows near
        obstacles (like Nav2's inflation layer) so paths keep to the middle of doors."""
        blocked = self._grid != FREE
        self._clearance = ndimage.distance_transform_edt(~blocked) * RESOLUTION
        self._lethal = self._clearance < self.inflation_radius
        ramp = 0.4
        cost = 1.0 + 8.0 * np.clip((self.inflation_radius + ramp - self._clearance) / ramp, 0, 1)
        height, width = self._grid.shape
        index = np.arange(height * width).reshape(height, width)
        rows, cols, weights = [], [], []
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
            r0, r1 = slice(0, height - dr), slice(dr, height)
            c0, c1 = (slice(0, width - dc), slice(dc, width)) if dc >= 0 else \
                (slice(-dc, width), slice(0, width + dc))
            a, b = index[r0, c0], index[r1, c1]
            ok = ~self._lethal[r0, c0] & ~self._lethal[r1, c1]
            step = math.hypot(dr, dc) * RESOLUTION
            w = step * (cost[r0, c0] + cost[r1, c1]) / 2
            rows.append(a[ok])
            cols.append(b[ok])
            weights.append(w[ok])
        graph = coo_matrix((np.concatenate(weights), (np.concatenate(rows),
                                                      np.concatenate(cols))),
                           shape=(height * width,) * 2).tocsr()
        self._graph = graph

    def plan(self, start: tuple[float, float], goal: tuple[float, float]) -> np.ndarray | None:
        """(N, 2) world path from start to goal on the inflated grid, or None if unreachable
        (goal outside the grid, in lethal space or not connected). A start inside the
        inflation radius (after a manual drive) leaves via the nearest non-lethal cell."""
        height, width = self._grid.shape
        goal_col, goal_row = self._cell_of(*goal)
        if not (0 <= goal_col < width and 0 <= goal_row < height) or \
                self._lethal[goal_row, goal_col]:
            return None
        col, row = self._cell_of(*start)
        col, row = min(max(col, 0), width - 1), min(max(row, 0), height - 1)
        prefix = []
        if self._lethal[row, col]:
            _, (rows, cols) = ndimage.distance_transform_edt(self._lethal, return_indices=True)
            row, col = int(rows[row, col]), int(cols[row, col])
            prefix = [self.cell_center(col, row)]
        source = row * width + col
        target = goal_row * width + goal_col
        _, predecessors = dijkstra(self._graph, directed=False, indices=source,
                                   return_predecessors=True)
        if source != target and predecessors[target] < 0:
            return None
        cells = [target]
        while cells[-1] != source:
            cells.append(int(predecessors[cells[-1]]))
        cells.reverse()
        points = [self.cell_center(c % width, c // width) for c in cells]
        path = np.array([start, *prefix, *points[1:-1], goal], dtype=float)
        return path

    # -- commands -----------------------------------------------------------------------------

    def set_goal(self, x: float, y: float, yaw: float) -> bool:
        """Plan to (x, y) and drive there, then turn to `yaw`. False (status failed,
        'unreachable') when no path exists."""
        with self._lock:
            path = self.plan((self._x, self._y), (x, y))
            self._goal = (x, y, yaw)
            self._cmd = (0.0, 0.0)
            if path is None:
                self._mode, self._path = "idle", np.empty((0, 2))
                self._status, self._status_reason = "failed", "unreachable"
                return False
            self._mode, self._path, self._path_index = "goal", path, 0
            self._status, self._status_reason = "active", ""
            self._progress_time, self._progress_pose = self.time, (self._x, self._y, self._yaw)
            return True

    def cancel_goal(self) -> None:
        with self._lock:
            if self._status == "active":
                self._status, self._status_reason = "canceled", ""
            self._mode = "idle" if self._mode == "goal" else self._mode

    def set_velocity(self, v: float, w: float) -> None:
        """Direct velocity command (like /cmd_vel). A goal in progress is kept (Nav2 never
        drops one for a foreign /cmd_vel): the command overrides the controller for one
        controller period, so the two fight. Without a goal it is held for cmd_vel_timeout_s of
        sim time, then the base stops."""
        with self._lock:
            if self._mode != "goal":
                self._mode = "velocity"
            self._cmd = (float(np.clip(v, -self.max_linear_speed, self.max_linear_speed)),
                         float(np.clip(w, -self.max_angular_speed, self.max_angular_speed)))
            self._cmd_time = self.time

    def goal_status(self) -> tuple[str, str]:
        """(status, reason): idle, active, succeeded, failed (reason), canceled."""
        return self._status, self._status_reason

    def path(self) -> np.ndarray:
        """The current goal's planned path, (N, 2) world points."""
        return self._path.copy()

    def pose(self) -> tuple[float, float, float]:
        """(x, y, yaw) of base_link in the map frame."""
        return self._x, self._y, self._yaw

    def velocity(self) -> tuple[float, float]:
        """(v, w) of the base: forward m/s and yaw rate rad/s."""
        return self._v, self._w

    def is_moving(self) -> bool:
        return abs(self._v) > 1e-4 or abs(self._w) > 1e-4

    # -- simulation ---------------------------------------------------------------------------

    def advance(self, dt: float) -> float:
        """Integrate the base for dt sim seconds (substeps <= 20 ms); returns the sim time."""
        with self._lock:
            remaining = dt
            while remaining > 1e-9:
                step = min(self.MAX_SUBSTEP_S, remaining)
                self._substep(step)
                remaining -= step
            self._apply_pose()
            return self.time

    def _substep(self, dt: float) -> None:
        if self._mode == "goal":
            v_des, w_des = self._follow()
            if self._mode == "goal" and self.time - self._cmd_time <= self.CONTROLLER_PERIOD_S:
                v_des, w_des = self._cmd  # the other publisher's command wins this period
        elif self._mode == "velocity" and self.time - self._cmd_time <= self.cmd_vel_timeout_s:
            v_des, w_des = self._cmd
        else:
            v_des, w_des = 0.0, 0.0
        self._v += float(np.clip(v_des - self._v, -self.max_linear_accel * dt,
                                 self.max_linear_accel * dt))
        self._w += float(np.clip(w_des - self._w, -self.max_angular_accel * dt,
                                 self.max_angular_accel * dt))
        yaw_mid = self._yaw + self._w * dt / 2
        x = self._x + self._v * dt * math.cos(yaw_mid)
        y = self._y + self._v * dt * math.sin(yaw_mid)
        self._yaw = _wrap(self._yaw + self._w * dt)
        moved = abs(self._v) > 1e-9
        if moved and self.clearance(x, y) < self.robot_radius and \
                self.clearance(x, y) < self.clearance(self._x, self._y):
            if not self._blocked:
                self.collisions += 1
            self._blocked = True
            self._v = 0.0
        elif moved:
            self._x, self._y = x, y
            self._blocked = False
        self.time += dt

    def _follow(self) -> tuple[float, float]:
        """Pure pursuit along the path, then an in-place turn to the goal yaw."""
        goal_x, goal_y, goal_yaw = self._goal
        distance = math.hypot(goal_x - self._x, goal_y - self._y)
        anchor_x, anchor_y, anchor_yaw = self._progress_pose
        if math.hypot(self._x - anchor_x, self._y - anchor_y) > 0.05 or \
                abs(_wrap(self._yaw - anchor_yaw)) > 0.1:
            self._progress_pose, self._progress_time = (self._x, self._y, self._yaw), self.time
        elif self.time - self._progress_time > self.STUCK_AFTER_S:
            self._mode, self._status, self._status_reason = "idle", "failed", "stuck"
            return 0.0, 0.0
        error = _wrap(goal_yaw - self._yaw)
        if distance <= self.goal_xy_tolerance and abs(error) <= self.goal_yaw_tolerance:
            # The goal checker: position AND heading within tolerance ends the goal.
            self._mode, self._status = "idle", "succeeded"
            return 0.0, 0.0
        precision = self.CONTROLLER_PRECISION_M
        if distance <= precision or (self._path_index >= len(self._path) - 1
                                     and distance < 2 * precision) or (
                distance <= self.goal_xy_tolerance and self._path_index >= len(self._path) - 1):
            self._path_index = len(self._path) - 1
            return 0.0, self._turn_rate(error)
        # Advance along the path to the nearest point ahead, then look ahead.
        position = np.array([self._x, self._y])
        window = self._path[self._path_index: self._path_index + 40]
        self._path_index += int(np.argmin(np.hypot(*(window - position).T)))
        lookahead = self._path[-1]
        for point in self._path[self._path_index:]:
            if math.hypot(*(point - position)) >= self.LOOKAHEAD_M:
                lookahead = point
                break
        dx, dy = lookahead[0] - self._x, lookahead[1] - self._y
        alpha = _wrap(math.atan2(dy, dx) - self._yaw)
        if abs(alpha) > self.ROTATE_IN_PLACE_RAD:
            return 0.0, self._turn_rate(alpha)
        reach = max(math.hypot(dx, dy), 1e-3)
        curvature = 2.0 * math.sin(alpha) / reach
        v = min(self.max_linear_speed, math.sqrt(2 * self.max_linear_accel * 0.5 * distance))
        if abs(v * curvature) > self.max_angular_speed:
            v = self.max_angular_speed / abs(curvature)
        return v, v * curvature

    def _turn_rate(self, error: float) -> float:
        """Fastest yaw rate that still stops at the target angle under the accel limit."""
        magnitude = min(self.max_angular_speed, 3.0 * abs(error),
                        0.9 * math.sqrt(2 * self.max_angular_accel * abs(error)))
        return math.copysign(max(magnitude, 0.05), error)

    def _apply_pose(self) -> None:
        self.data.mocap_pos[0] = (self._x, self._y, 0.0)
        self.data.mocap_quat[0] = (math.cos(self._yaw / 2), 0.0, 0.0, math.sin(self._yaw / 2))
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)
        self._version = getattr(self, "_version", 0) + 1

    def teleport(self, x: float, y: float, yaw: float) -> None:
        """Put the base somewhere (tests, evaluation set-ups); stops it and cancels any goal."""
        with self._lock:
            self.cancel_goal()
            self._mode, self._v, self._w = "idle", 0.0, 0.0
            self._x, self._y, self._yaw = float(x), float(y), _wrap(float(yaw))
            self._apply_pose()

