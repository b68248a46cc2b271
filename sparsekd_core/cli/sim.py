"""``sparsekd-sim``: generate a simulated LiDAR dataset in KITTI and/or Waymo format."""
from __future__ import annotations

import argparse
import sys

from sparsekd_core.data.sim.raycast import BACKENDS, DEVICES, RayCasterChoice

DESCRIPTION = """\
Simulate a spinning LiDAR driving through generated streets and write a labelled dataset.

Each scene is a city, residential or rural street with a gentle slope, kerbs, sidewalks,
buildings with windows, gardens, fences, lots, poles, signs, bollards, trees, bushes and rough
verges; road users (hatchbacks, sedans, SUVs, pickups, vans, trucks, buses, pedestrians of every
size with and without bags, cyclists riding or standing beside their bicycles) and the things
nobody labels (parked bicycles, prams) are placed without overlap, and the LiDAR's rays are cast
against everything (open3d, or torch with --raycaster torch), so occlusion is real; windows return
few pulses.
Labels hold every object with at least one LiDAR return, with its true number of points
(returns off its mesh), and box sizes drawn from a real dataset's published statistics
(--label-style). KITTI labels: Car, Van, Truck, Pedestrian, Cyclist, all around the sensor by
default (out-of-view objects get a zero 2D box, which the KITTI metric ignores; --labels camera
writes only what the front camera sees, as KITTI does); fixed KITTI-like calibration, so 2D boxes,
truncation, occlusion and difficulty are real projections. Waymo labels: Vehicle, Pedestrian,
Cyclist, all around. Intensity follows KITTI's 0..1 scale.

Presets: hdl64     Velodyne HDL-64E as on KITTI (64 beams, +2..-24.8 deg, 120 m, 1.73 m up;
                   points in the LiDAR frame)
         hdl32     Velodyne HDL-32E (32 beams, +10.7..-30.7 deg, 100 m), as on nuScenes
         vlp16     Velodyne VLP-16 (16 beams, +-15 deg, 100 m), common on small robots
         os1_64    Ouster OS1-64 (64 beams, +-22.5 deg, 1024 columns, 120 m)
         os1_128   Ouster OS1-128 (128 beams, +-22.5 deg, 1024 columns, 120 m)
         waymo_top Waymo's top LiDAR (64 beams, +2.4..-17.6 deg, 75 m; points in the vehicle
                   frame, z = 0 on the ground, with an elongation column)
A mix draws each scene's sensor: --preset hdl64:0.7,os1_64:0.1,vlp16:0.1,hdl32:0.1. All of a
dataset's frames are written in one frame (the main preset's, or --frame-height metres above the
road), whatever each sensor's mounting: that is what a model trained on them expects.

The same seed gives the same dataset (point and label files byte for byte), whatever --workers.

Ray casting: --raycaster open3d (the default) uses open3d's RaycastingScene, the fastest on CPU.
--raycaster torch casts with plain torch, on a CUDA GPU when there is one (--device auto): use it on
machines without open3d, e.g. GPU training machines, to generate data where the training runs. Both
give the same frames (same labels; the same points to within a millimetre, but for the rare ray that
grazes an edge); on CPU torch is about 10 times slower (hdl64: 1.3 s against 0.13 s of CPU per frame).
"""

EPILOG = """\
output (--format both; kitti or waymo writes only that folder):
  OUT/kitti/training/{velodyne,label_2,calib}/NNNNNN.*  and  OUT/kitti/ImageSets/{train,val}.txt
  OUT/waymo/waymo_processed_data_v0_5_0/<segment>/NNNN.npy, <segment>.pkl,
  OUT/waymo/waymo_infos_{train,val}.pkl and OUT/waymo/ImageSets/{train,val}.txt
  OUT/preview/*.png (with --preview), OUT/sim_meta.json

examples:
  sparsekd-sim                                                 # 200 frames, hdl64, both formats, data/sim
  sparsekd-sim --out data/sim_waymo --preset waymo_top --format waymo --frames 1000
  sparsekd-sim --out data/drive --sequence --frames 100 --val-fraction 1 --preview 5
  sparsekd-sim --out data/sim_gpu --raycaster torch --device cuda   # on a GPU machine without open3d
next:
  sparsekd-data kitti --root data/sim/kitti      # infos and the gt database for training
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparsekd-sim", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="data/sim", help="output folder (created if missing; default data/sim)")
    parser.add_argument("--frames", type=int, default=200, help="number of frames to generate (default 200)")
    parser.add_argument("--preset", default="hdl64", metavar="PRESET[:W,...]",
                        help="sensor preset, or a weighted mix of presets drawn per scene (default hdl64)")
    parser.add_argument("--label-style", default="kitti", choices=("kitti", "waymo", "nuscenes"),
                        help="whose box sizes road users have: that dataset's published class statistics "
                             "(default kitti)")
    parser.add_argument("--random-mount", type=float, default=0.0, metavar="SHARE",
                        help="share of scenes whose sensor sits at a random height (0.5-2.3 m; 1.5-2.3 m for hdl64 "
                             "and waymo_top, roof sensors that barely look up) and tilt; "
                             "points stay in the dataset's frame (default 0)")
    parser.add_argument("--narrow-streets", type=float, default=0.0, metavar="SHARE",
                        help="share of scenes on a narrow town street, as KITTI's (one lane each way, parked "
                             "cars, 2.5-3.5 m sidewalks, buildings close by: walls and parked cars 4-10 m from "
                             "the sensor); 0 (default) draws wide streets only, as before this option")
    parser.add_argument("--vehicle-glass", type=float, default=None, metavar="SHARE",
                        help="share of the pulses that meet a road vehicle's windows and come back (what lies behind "
                             "real car glass, seats and headrests, returns too; default: 0.12, the share of bare "
                             "glass, as before this option)")
    parser.add_argument("--street-clutter", type=float, default=0.0, metavar="SHARE",
                        help="share of scenes whose sidewalks carry dense person-sized clutter, about one thing "
                             "every 8 m along each kerb and frontage: short sign posts, parking meters, ticket "
                             "machines, cabinets, post boxes, containers, advertising pillars, hydrants, young "
                             "trees, shrubs, bicycle stands (things a model calls pedestrians); 0 "
                             "(default) keeps the sparser streets of before this option")
    parser.add_argument("--people-brightness", type=float, default=None, metavar="GAIN",
                        help="pedestrians' and cyclists' reflectivity times GAIN: clothes and skin read brighter to a "
                             "905 nm LiDAR than their daylight shades (1.35 puts simulated pedestrians at the "
                             "intensity real KITTI pedestrians read, a median 0.36); default: as before this option")
    parser.add_argument("--vehicle-clear-coat", action="store_true",
                        help="put road vehicles' paint under a clear coat, as real cars' is: it glints where a panel "
                             "faces the sensor and reads 0 on roofs, bonnets and oblique flanks (real KITTI car "
                             "returns: half read 0, the rest a median 0.32); default: paint that reads alike all over "
                             "a car, as before this option. Same shapes and placement either way")
    parser.add_argument("--edge-returns", type=float, default=0.0, metavar="SHARE",
                        help="in every frame, the share of the rays grazing an object's silhouette whose return lies "
                             "between the object and what is behind it (mixed pixels: a real beam's footprint "
                             "straddles the edge). Without them simulated people read flatter than real ones "
                             "(sparsekd-gap's thickness lines: 26%% of them under 0.05 m, no real one); 0.5 took "
                             "that to 10%% (docs/results.md 'Flat people'). 0 (default): ideal rays, as before this "
                             "option")
    parser.add_argument("--pedalling-riders", type=float, default=0.0, metavar="SHARE",
                        help="share of scenes whose riding cyclists pedal as real ones do: legs bent at the knee on "
                             "the pedals, knees apart, a torso leaning forward to broad shoulders, arms bent out to "
                             "the grips, most in helmets, some with a backpack, panniers or a basket. 0 (default): "
                             "upright riders on straight legs close together, thinner to a LiDAR than real ones, as "
                             "before this option")
    parser.add_argument("--real-bicycles", type=float, default=0.0, metavar="SHARE",
                        help="share of scenes whose bicycles, ridden or parked, are built as real ones are: open "
                             "wheels (tyre, rim and hub; 2 mm spokes pass the pulse), the saddle behind the bottom "
                             "bracket on a 73-degree seat tube at a real saddle height, and the rider sitting on it "
                             "(riders pedalling with --pedalling-riders lean 5-30 degrees, as city riders do). 0 "
                             "(default): solid disc wheels that return the whole wheel seen from the side, and riders "
                             "over the middle of the frame, as before this option")
    parser.add_argument("--close-people", type=float, default=0.0, metavar="SHARE",
                        help="share of scenes whose people keep close company, as real ones do: standing people "
                             "lean on planters and bins, wait at bicycle racks, stand in tight groups (2 cm apart "
                             "instead of 25); 0 (default) keeps them clear of everything, as before this option")
    parser.add_argument("--road-people", type=float, default=0.0, metavar="SHARE",
                        help="share of scenes where people also walk on the road itself, along it or across, alone "
                             "or two or three abreast, as in pedestrian zones and shared streets and on the way to "
                             "a parked car (about 3 within 40 m of the sensor; not in --sequence drives); 0 "
                             "(default) keeps them on sidewalks and crossings, where a person walking along the "
                             "road is always a cyclist. Use it with --road-furniture: without it, models trained "
                             "at 0.5 put more false pedestrians on real roads (docs/results.md 'People on the "
                             "road'); the bundled pillar pair's last epochs had 0.5 of it and 0.7 of furniture")
    parser.add_argument("--road-furniture", type=float, default=0.0, metavar="SHARE",
                        help="share of scenes whose carriageway carries road furniture: traffic islands with sign "
                             "posts, delineator posts, cones, work-zone warning boards, bins out for collection, "
                             "kerb extensions with a sign or tree, bicycles at the kerb (about one group every 25 "
                             "m; none labelled; not in --sequence drives); 0 (default) keeps the road clear of "
                             "everything but road users. Meant to go with --road-people, so that a model learns "
                             "that not everything person-sized on a road is a person")
    parser.add_argument("--walking-pairs", type=float, default=0.0, metavar="SHARE",
                        help="share of scenes whose sidewalk walkers often walk two abreast, as real ones do (half "
                             "of them with a companion 0.7-1.05 m to one side; not in --sequence drives): six of "
                             "the 14 pedestrians in 24 held-out real KITTI sweeps walk within 1.1 m of another, "
                             "against 5-8%% in streets without it, and the bundled students box those worst; two "
                             "students trained at 0.7 scored real pedestrians 3-5 BEV points above the same runs "
                             "without it, though neither beat the bundled one (docs/results.md 'Walking in "
                             "pairs'); 0 (default) keeps walkers single file, as before this option")
    parser.add_argument("--turning-walkers", type=float, default=0.0, metavar="SHARE",
                        help="share of scenes where half the sidewalk walkers walk at any heading (crossing the "
                             "sidewalk, turning into a door, stepping round each other) rather than along it (not "
                             "in --sequence drives); without it a model learns that people far down the road walk "
                             "along the sensor's ray, which only a quarter of the real held-out sweeps' pedestrians do "
                             "(docs/results.md, session 46); 0 (default) keeps every walker on its sidewalk's line")
    parser.add_argument("--lane-cyclists", type=float, default=0.0, metavar="SHARE",
                        help="share of scenes where each side of the street without a bike lane has cyclists "
                             "riding with the traffic in its outer travel lane, 0.5-1 m from its kerb side, as many as "
                             "a bike lane would carry (not in --sequence drives); without it such a side has only a "
                             "few cyclists at any heading, so --narrow-streets (bike lanes on a fifth of sides) draws "
                             "40%% fewer cyclists; 0 (default) keeps cyclists to bike lanes, as before this option")
    parser.add_argument("--open-squares", type=float, default=0.0, metavar="SHARE",
                        help="share of scenes whose street opens onto squares every 30-80 m: open paved ground "
                             "15-35 m deep where the buildings step back, with trees, bollards, benches, bins and "
                             "lamps on it, and pedestrians and cyclists (riders often in file) crossing it at any "
                             "heading (people only in snapshots, not --sequence drives). Half the real held-out "
                             "cyclists ahead ride across the street's axis, crossing such a square; 8%% of simulated "
                             "ones do, 23%% with squares in every scene (docs/results.md, session 58); 0 (default): "
                             "no squares, as before this option")
    parser.add_argument("--frame-height", type=float, default=None, metavar="M",
                        help="write points and boxes in a level frame this high above the road (default: "
                             "the main preset's own frame, 1.73 for hdl64)")
    parser.add_argument("--no-ego-body", dest="ego_body", action="store_false",
                        help="leave out the recording vehicle's own body under a roof sensor (by default each "
                             "scene draws one, as real sweeps see theirs: a few weak returns at the sensor's feet, "
                             "and clusters off the small fixtures on it, mirrors, rack feet, antennas, that no "
                             "model should call a road user; a scene whose mount leaves less than 1.1 m for "
                             "the roof has none, which is every sensor mounted below 1.4 m and a sixth of "
                             "hdl64 scenes at its 1.73 m)")
    parser.add_argument("--labels", default="all", choices=("all", "camera"),
                        help="KITTI labels for every object around the sensor (default) or only for those "
                             "the front camera sees")
    parser.add_argument("--format", dest="fmt", default="both", choices=("kitti", "waymo", "both"),
                        help="dataset layout(s) to write (default both)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: same seed, same data (default 0)")
    parser.add_argument("--val-fraction", type=float, default=0.2,
                        help="share of scenes (of a drive: of its last frames) put into the val split (default 0.2)")
    parser.add_argument("--sequence", action="store_true",
                        help="one continuous 10 Hz drive (ego and road users move) instead of independent "
                             "snapshots of many streets; for replay and tracking demos")
    parser.add_argument("--preview", type=int, default=0, metavar="N",
                        help="write bird's-eye-view PNGs of N evenly spaced frames to OUT/preview/")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="simulation processes (default: one per CPU core, at most 4, for 100 frames "
                             "or more; else 1); the output does not depend on it")
    parser.add_argument("--raycaster", default="open3d", choices=BACKENDS,
                        help="what casts the rays: open3d (default; fastest on CPU) or torch (no open3d needed; "
                             "runs on a CUDA GPU: for GPU training machines without open3d)")
    parser.add_argument("--device", default="auto", choices=DEVICES,
                        help="where --raycaster torch runs: auto (a CUDA GPU if torch sees one, else the CPU; "
                             "default), cpu or cuda (an error if there is no GPU); ignored by open3d")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sparsekd_core.data.sim.generate import generate
    from sparsekd_core.data.sim.scene import SimOptions

    try:
        options = SimOptions(label_style=args.label_style, random_mount=args.random_mount,
                             frame_height=args.frame_height, raycaster=RayCasterChoice(args.raycaster, args.device),
                             ego_body=args.ego_body, narrow_streets=args.narrow_streets,
                             street_clutter=args.street_clutter,
                             vehicle_glass=args.vehicle_glass, people_brightness=args.people_brightness,
                             vehicle_clear_coat=args.vehicle_clear_coat,
                             close_people=args.close_people, road_people=args.road_people,
                             road_furniture=args.road_furniture, walking_pairs=args.walking_pairs,
                             turning_walkers=args.turning_walkers, lane_cyclists=args.lane_cyclists,
                             edge_returns=args.edge_returns, pedalling_riders=args.pedalling_riders,
                             real_bicycles=args.real_bicycles, open_squares=args.open_squares)
        summary = generate(args.out, frames=args.frames, preset=args.preset, fmt=args.fmt, seed=args.seed,
                           val_fraction=args.val_fraction, sequence=args.sequence, preview=args.preview,
                           progress=not args.quiet, workers=args.workers, options=options, labels=args.labels)
    except ValueError as err:
        print(f"sparsekd-sim: error: {err}", file=sys.stderr)
        return 2
    objects = ", ".join(f"{k} {v}" for k, v in sorted(summary.objects.items()))
    splits = ", ".join(f"{k} {v}" for k, v in summary.splits.items())
    print(f"wrote {summary.frames} frames ({splits}) to {args.out}: "
          f"{summary.points / max(summary.frames, 1):,.0f} points/frame; labelled objects: {objects}")
    print(f"rate: {summary.rate:.1f} frames/s ({args.preset}, format {args.fmt}, "
          f"rays: {options.raycaster.resolved()}, {summary.seconds:.1f} s; "
          f"{summary.cpu_ms_per_frame:.0f} ms CPU per frame)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
