# CPU-sized CenterPoint-pillar for nuScenes-format pools (mmengine config file; curate fills the
# datasets and work_dir). The nuScenes sibling of centerpoint_tiny.py.
#
# 360-degree range of 81.92 m x 81.92 m around LIDAR_TOP, 0.64 m pillars (a 128 x 128 grid), the
# same SECOND / SECONDFPN widths as centerpoint_tiny.py (64 x 64 heatmaps, out_size_factor 2),
# and mmdet3d's nuScenes inputs: 5 point features (x, y, z, intensity, time lag) from the key
# frame plus `sweeps` preceding sweeps (LoadPointsFromMultiSweeps), 9-dim boxes with velocity
# (the vel branch is trained: nuScenes has velocities). One task per class of the loop's classes
# (the adapter sets them); class_names below is the nuScenes detection order the infos use.
# The head is curate's ProbCenterHead (per-class score vectors of the kept boxes).
point_cloud_range = [-40.96, -40.96, -5.0, 40.96, 40.96, 3.0]
voxel_size = [0.64, 0.64, 8.0]
grid = [128, 128]
out_size_factor = 2
sweeps = 2
class_names = ["car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
               "pedestrian", "traffic_cone", "barrier"]
epochs = 2
batch_size = 2

default_scope = "mmdet3d"

_norm = dict(type="BN", eps=1e-3, momentum=0.01)
_centre_range = [-50.0, -50.0, -10.0, 50.0, 50.0, 10.0]

model = dict(
    type="CenterPoint",
    data_preprocessor=dict(
        type="Det3DDataPreprocessor",
        voxel=True,
        voxel_layer=dict(
            max_num_points=32, point_cloud_range=point_cloud_range, voxel_size=voxel_size,
            max_voxels=(12000, 12000),
        ),
    ),
    pts_voxel_encoder=dict(
        type="PillarFeatureNet", in_channels=5, feat_channels=[32], with_distance=False,
        voxel_size=voxel_size, point_cloud_range=point_cloud_range,
        norm_cfg=dict(type="BN1d", eps=1e-3, momentum=0.01), legacy=False,
    ),
    pts_middle_encoder=dict(type="PointPillarsScatter", in_channels=32, output_shape=grid),
    pts_backbone=dict(
        type="SECOND", in_channels=32, out_channels=[32, 32, 64], layer_nums=[1, 1, 1],
        layer_strides=[2, 2, 2], norm_cfg=_norm, conv_cfg=dict(type="Conv2d", bias=False),
    ),
    pts_neck=dict(
        type="SECONDFPN", in_channels=[32, 32, 64], out_channels=[32, 32, 32], upsample_strides=[1, 2, 4],
        norm_cfg=_norm, upsample_cfg=dict(type="deconv", bias=False), use_conv_for_no_stride=True,
    ),
    pts_bbox_head=dict(
        type="ProbCenterHead",
        in_channels=96,
        tasks=[
            dict(num_class=1, class_names=["car"]),
            dict(num_class=2, class_names=["truck", "bus"]),
            dict(num_class=2, class_names=["bicycle", "pedestrian"]),
        ],
        common_heads=dict(reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2), vel=(2, 2)),
        share_conv_channel=32,
        bbox_coder=dict(
            type="CenterPointBBoxCoder", post_center_range=_centre_range, max_num=200, score_threshold=0.05,
            out_size_factor=out_size_factor, voxel_size=voxel_size[:2], pc_range=point_cloud_range[:2],
            code_size=9,
        ),
        separate_head=dict(type="SeparateHead", init_bias=-2.19, final_kernel=3),
        loss_cls=dict(type="mmdet.GaussianFocalLoss", reduction="mean"),
        loss_bbox=dict(type="mmdet.L1Loss", reduction="mean", loss_weight=0.25),
        norm_bbox=True,
    ),
    train_cfg=dict(
        pts=dict(
            grid_size=[grid[0], grid[1], 1], voxel_size=voxel_size, out_size_factor=out_size_factor,
            point_cloud_range=point_cloud_range, dense_reg=1, gaussian_overlap=0.1, max_objs=200,
            min_radius=2, code_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2],
        )
    ),
    test_cfg=dict(
        pts=dict(
            post_center_limit_range=_centre_range, max_per_img=200, max_pool_nms=False,
            min_radius=[4.0, 12.0, 10.0, 0.85, 0.175], score_threshold=0.05, pc_range=point_cloud_range[:2],
            out_size_factor=out_size_factor, voxel_size=voxel_size[:2], nms_type="circle",
            pre_max_size=1000, post_max_size=100, nms_thr=0.2,
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

optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=0.003, betas=(0.95, 0.99), weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2),
)
