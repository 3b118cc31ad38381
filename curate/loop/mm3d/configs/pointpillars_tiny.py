# CPU-sized PointPillars (mmengine config file; curate fills the datasets and work_dir).
#
# 40.96 m x 40.96 m in front of the sensor, 0.32 m pillars (a 128 x 128 grid), one conv block per
# backbone stage with 32/32/64 channels, a 96-channel head: about 0.3 M parameters, a few
# iterations per second on 2 CPU cores. The layers are those of mmdet3d's
# pointpillars_hv_secfpn_8xb6-160e_kitti-3d-3class.py; only range, grid and widths shrink.
point_cloud_range = [0.0, -20.48, -3.0, 40.96, 20.48, 1.0]
voxel_size = [0.32, 0.32, 4.0]
grid = [128, 128]
class_names = ["Pedestrian", "Cyclist", "Car"]
epochs = 2
batch_size = 2

default_scope = "mmdet3d"

model = dict(
    type="VoxelNet",
    data_preprocessor=dict(
        type="Det3DDataPreprocessor",
        voxel=True,
        voxel_layer=dict(
            max_num_points=32, point_cloud_range=point_cloud_range, voxel_size=voxel_size,
            max_voxels=(8000, 8000),
        ),
    ),
    voxel_encoder=dict(
        type="PillarFeatureNet", in_channels=4, feat_channels=[32], with_distance=False,
        voxel_size=voxel_size, point_cloud_range=point_cloud_range,
    ),
    middle_encoder=dict(type="PointPillarsScatter", in_channels=32, output_shape=grid),
    backbone=dict(
        type="SECOND", in_channels=32, layer_nums=[1, 1, 1], layer_strides=[2, 2, 2],
        out_channels=[32, 32, 64],
    ),
    neck=dict(
        type="SECONDFPN", in_channels=[32, 32, 64], upsample_strides=[1, 2, 4],
        out_channels=[32, 32, 32],
    ),
    bbox_head=dict(
        type="ProbAnchor3DHead",
        num_classes=3,
        in_channels=96,
        feat_channels=96,
        use_direction_classifier=True,
        assign_per_class=True,
        anchor_generator=dict(
            type="AlignedAnchor3DRangeGenerator",
            ranges=[
                [0.0, -20.48, -0.6, 40.96, 20.48, -0.6],
                [0.0, -20.48, -0.6, 40.96, 20.48, -0.6],
                [0.0, -20.48, -1.78, 40.96, 20.48, -1.78],
            ],
            sizes=[[0.8, 0.6, 1.73], [1.76, 0.6, 1.73], [3.9, 1.6, 1.56]],
            rotations=[0, 1.57],
            reshape_out=False,
        ),
        diff_rad_by_sin=True,
        bbox_coder=dict(type="DeltaXYZWLHRBBoxCoder"),
        loss_cls=dict(type="mmdet.FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type="mmdet.SmoothL1Loss", beta=1.0 / 9.0, loss_weight=2.0),
        loss_dir=dict(type="mmdet.CrossEntropyLoss", use_sigmoid=False, loss_weight=0.2),
    ),
    train_cfg=dict(
        assigner=[
            dict(type="Max3DIoUAssigner", iou_calculator=dict(type="mmdet3d.BboxOverlapsNearest3D"),
                 pos_iou_thr=0.5, neg_iou_thr=0.35, min_pos_iou=0.35, ignore_iof_thr=-1),
            dict(type="Max3DIoUAssigner", iou_calculator=dict(type="mmdet3d.BboxOverlapsNearest3D"),
                 pos_iou_thr=0.5, neg_iou_thr=0.35, min_pos_iou=0.35, ignore_iof_thr=-1),
            dict(type="Max3DIoUAssigner", iou_calculator=dict(type="mmdet3d.BboxOverlapsNearest3D"),
                 pos_iou_thr=0.6, neg_iou_thr=0.45, min_pos_iou=0.45, ignore_iof_thr=-1),
        ],
        allowed_border=0,
        pos_weight=-1,
        debug=False,
    ),
    test_cfg=dict(
        use_rotate_nms=True, nms_across_levels=False, nms_thr=0.01, score_thr=0.05,
        min_bbox_size=0, nms_pre=200, max_num=50,
    ),
)

train_pipeline = [
    dict(type="LoadPointsFromFile", coord_type="LIDAR", load_dim=4, use_dim=4),
    dict(type="LoadAnnotations3D", with_bbox_3d=True, with_label_3d=True),
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
