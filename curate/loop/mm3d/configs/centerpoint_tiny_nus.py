# CPU-sized CenterPoint-pillar for nuScenes-format pools (mmengine config file; curate fills the
# datasets and work_dir): centerpoint_tiny.py (same layers, widths, head, optimiser, schedule),
# inherited with mmengine's _base_, and only what nuScenes changes written here:
#
# * a 360-degree range of 81.92 m x 81.92 m around LIDAR_TOP with 0.64 m pillars (still a
#   128 x 128 grid, 64 x 64 heatmaps), so every place the base spells range or pillar size;
# * mmdet3d's nuScenes inputs: 5 point features (x, y, z, intensity, time lag) from the key frame
#   plus `sweeps` preceding sweeps (LoadPointsFromMultiSweeps);
# * 9-dim boxes with velocity: the vel branch is trained (code weight 0.2, as mmdet3d's nuScenes
#   CenterPoint), no ZeroBoxVelocity padding; the loop carries the predicted velocity into the
#   nuScenes metric (mAVE in NDS);
# * nuScenes tasks and detection class order (the adapter gives the loop's classes one task
#   each), more boxes per sample, per-class NMS radii.
#
# mmengine merges dicts key by key and replaces lists, so the pipelines are written whole.
_base_ = ["./centerpoint_tiny.py"]

point_cloud_range = [-40.96, -40.96, -5.0, 40.96, 40.96, 3.0]
voxel_size = [0.64, 0.64, 8.0]
sweeps = 2
class_names = ["car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
               "pedestrian", "traffic_cone", "barrier"]

_centre_range = [-50.0, -50.0, -10.0, 50.0, 50.0, 10.0]

model = dict(
    data_preprocessor=dict(
        voxel_layer=dict(point_cloud_range=point_cloud_range, voxel_size=voxel_size, max_voxels=(12000, 12000)),
    ),
    pts_voxel_encoder=dict(in_channels=5, voxel_size=voxel_size, point_cloud_range=point_cloud_range),
    pts_bbox_head=dict(
        tasks=[
            dict(num_class=1, class_names=["car"]),
            dict(num_class=2, class_names=["truck", "bus"]),
            dict(num_class=2, class_names=["bicycle", "pedestrian"]),
        ],
        bbox_coder=dict(
            post_center_range=_centre_range, max_num=200, voxel_size=voxel_size[:2], pc_range=point_cloud_range[:2],
        ),
    ),
    train_cfg=dict(
        pts=dict(
            voxel_size=voxel_size, point_cloud_range=point_cloud_range, max_objs=200,
            code_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2],
        )
    ),
    test_cfg=dict(
        pts=dict(
            post_center_limit_range=_centre_range, max_per_img=200, min_radius=[4.0, 12.0, 10.0, 0.85, 0.175],
            pc_range=point_cloud_range[:2], voxel_size=voxel_size[:2], post_max_size=100,
        )
    ),
)

_load = [
    dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=5, use_dim=5),
    dict(type="LoadPointsFromMultiSweeps", sweeps_num=sweeps, use_dim=[0, 1, 2, 3, 4], pad_empty_sweeps=True,
         remove_close=True, test_mode=True),
]
train_pipeline = [
    *_load,
    dict(type="LoadAnnotations3D", with_bbox_3d=True, with_label_3d=True, with_attr_label=False),
    dict(type="GlobalRotScaleTrans", rot_range=[-0.3925, 0.3925], scale_ratio_range=[0.95, 1.05],
         translation_std=[0, 0, 0]),
    dict(type="RandomFlip3D", sync_2d=False, flip_ratio_bev_horizontal=0.5, flip_ratio_bev_vertical=0.5),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectNameFilter", classes=class_names),
    dict(type="PointShuffle"),
    dict(type="Pack3DDetInputs", keys=["points", "gt_bboxes_3d", "gt_labels_3d"]),
]
test_pipeline = [
    *_load,
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="Pack3DDetInputs", keys=["points"]),
]
