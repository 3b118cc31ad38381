# CPU-sized CenterPoint-pillar for KITTI-format data (mmengine config file; curate fills the
# datasets and work_dir).
#
# Same range, pillars and backbone widths as pointpillars_tiny.py: 40.96 m x 40.96 m in front of
# the sensor, 0.32 m pillars (a 128 x 128 grid), one conv block per SECOND stage with 32/32/64
# channels, a 96-channel neck output at stride 2 (64 x 64 heatmaps, out_size_factor 2). Two
# tasks, [Pedestrian, Cyclist] and [Car]: their concatenation is the label order of class_names
# (CenterHead numbers labels task by task). Velocity: KITTI has none, but mmdet3d 1.4's
# CenterHead cannot train without its vel branch (its targets read box[7:9]); so the branch is
# kept with code weight 0 (it learns nothing, the loss ignores it) and the ZeroBoxVelocity
# transform (registered by curate.loop.mm3d.detector) pads the 7-dim KITTI boxes with a zero
# velocity. Predicted boxes are 9-dim; the adapter keeps the first 7. The head is
# curate's ProbCenterHead (CenterHead keeping every class's score at each kept box's cell). The
# layers are those of mmdet3d's centerpoint_pillar02_second_secfpn_nus.py; only range, grid,
# widths and the tasks change. About 0.2 M parameters, a few iterations per second on 2 cores.
point_cloud_range = [0.0, -20.48, -3.0, 40.96, 20.48, 1.0]
voxel_size = [0.32, 0.32, 4.0]
grid = [128, 128]
out_size_factor = 2
class_names = ["Pedestrian", "Cyclist", "Car"]
epochs = 2
batch_size = 2

default_scope = "mmdet3d"

_norm = dict(type="BN", eps=1e-3, momentum=0.01)
_centre_range = [-5.0, -25.0, -5.0, 46.0, 25.0, 3.0]

model = dict(
    type="CenterPoint",
    data_preprocessor=dict(
        type="Det3DDataPreprocessor",
        voxel=True,
        voxel_layer=dict(
            max_num_points=32, point_cloud_range=point_cloud_range, voxel_size=voxel_size,
            max_voxels=(8000, 8000),
        ),
    ),
    pts_voxel_encoder=dict(
        type="PillarFeatureNet", in_channels=4, feat_channels=[32], with_distance=False,
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
            dict(num_class=2, class_names=["Pedestrian", "Cyclist"]),
            dict(num_class=1, class_names=["Car"]),
        ],
        common_heads=dict(reg=(2, 2), height=(1, 2), dim=(3, 2), rot=(2, 2), vel=(2, 2)),
        share_conv_channel=32,
        bbox_coder=dict(
            type="CenterPointBBoxCoder", post_center_range=_centre_range, max_num=100, score_threshold=0.05,
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
            point_cloud_range=point_cloud_range, dense_reg=1, gaussian_overlap=0.1, max_objs=100,
            min_radius=2, code_weights=[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0],
        )
    ),
    test_cfg=dict(
        pts=dict(
            post_center_limit_range=_centre_range, max_per_img=100, max_pool_nms=False,
            min_radius=[0.85, 4.0], score_threshold=0.05, pc_range=point_cloud_range[:2],
            out_size_factor=out_size_factor, voxel_size=voxel_size[:2], nms_type="circle",
            pre_max_size=1000, post_max_size=50, nms_thr=0.2,
        )
    ),
)

train_pipeline = [
    dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=4, use_dim=4),
    dict(type="LoadAnnotations3D", with_bbox_3d=True, with_label_3d=True),
    dict(type="ZeroBoxVelocity"),
    dict(type="RandomFlip3D", flip_ratio_bev_horizontal=0.5),
    dict(type="GlobalRotScaleTrans", rot_range=[-0.3926991, 0.3926991], scale_ratio_range=[0.95, 1.05]),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="ObjectRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="PointShuffle"),
    dict(type="Pack3DDetInputs", keys=["points", "gt_labels_3d", "gt_bboxes_3d"]),
]
test_pipeline = [
    dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=4, use_dim=4),
    dict(type="PointsRangeFilter", point_cloud_range=point_cloud_range),
    dict(type="Pack3DDetInputs", keys=["points"]),
]

optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=0.003, betas=(0.95, 0.99), weight_decay=0.01),
    clip_grad=dict(max_norm=35, norm_type=2),
)
