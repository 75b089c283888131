"""Frozen-encoder probes: segmentation, detection and classification heads on cached features.

Contract: ``run_probes(encoder, probes_cfg, model_cfg, seed, data_root, device) -> dict[str, float]``
probes a frozen encoder with every task of a ``probes`` config (``vjepa/conf/probes/``), seeded and
deterministic on CPU; ``python -m vjepa.evaluate run_dir=...`` does the same for a saved run and merges the
numbers into its ``metrics.json``. Each task names a ``kind`` (seg | det | classify | depth), a ``data`` spec
(``vjepa.probes.datasets``: built-in sets in memory; ``vjepa.probes.folders``: the user's ImageFolder,
ADE20K, NYU depth, clip-list and COCO folders, streamed), the encoder ``layers`` to concatenate and its head's optimisation settings.
``layers`` is a list of block indices (default ``[-1]``; negatives count from the end; concatenated in the
order given) or ``levels`` (the 4 levels of deep self-supervision, or 4 equally spaced blocks without it);
a block the encoder does not have is refused before any data is built.

Metric names (``<task>`` is the task's key in the config; the prefix is ``probe`` for the target (EMA)
encoder, ``probe_online`` for the online encoder, ``probe_random`` for the random-init baseline):

    probe/<seg task>/miou              mean IoU over the classes present (CamVid: 11, void ignored;
                                       shapes: 6 incl. background); a class absent from both prediction
                                       and ground truth is left out of the mean
    probe/<seg task>/iou/<class>       per-class IoU, class names lower-cased (sky, building, ..., bicyclist;
                                       background, disk, square, triangle, ring, cross)
    probe/<det task>/ap50              COCO AP at IoU 0.5 (101-point, per class then mean; pycocotools'
                                       numbers at area "all", crowd regions ignored as there)
    probe/<det task>/ap                COCO AP averaged over IoU 0.5:0.05:0.95
    probe/<det task>/ap50/<class>      per-class AP at IoU 0.5 (COCO data: the category names, lower-cased;
                                       with ``probes=paper``: coco_det)
    probe/<cls task>/top1              top-1 accuracy (CIFAR-10, ImageFolder and clip-list data, whose label
                                       is called ``label``; ImageNet-1k val, SSv2, K400 and Diving-48 with
                                       ``probes=paper``; a test video's clips x views averaged first)
    probe/<seg task>/iou/class<c>      per-class IoU of ADE20K data (class c = annotation value c + 1)
    probe/<depth task>/rmse            depth RMSE in metres over the val pixels with a measurement, pooled
                                       over all val images (NYU depth data; lower is better)
    probe/<task>/skipped               samples of folder data left out as unreadable (``on_error: skip``)
    probe/<cls task>/<label>_top1      top-1 accuracy per label of video tasks: digit_top1, direction_top1
                                       (moving MNIST), shape_top1, direction_top1 (moving shapes)
    probe/<task>/<metric>/se           evaluation-sampling error of a headline metric (miou, ap50, ap, top1,
                                       <label>_top1, rmse): the bootstrap over the val samples (``bootstrap``
                                       replicates, per task or for the config; 0 = none), vjepa.probes.bootstrap
    probe/<task>/<metric>/gap_se       with the random-init baseline probed in the same call: the paired
                                       bootstrap error of (pretrained - random init) on the same samples
    probe/<task>/<metric>/refit_sd     with ``refits: R`` > 1 on a head whose fit is random (attentive,
                                       detection, segmentation's pixel draw): the spread over R fits, the
                                       metric then being their mean; linear and k-NN fits are deterministic
    probe/<task>/frames                frames of the task's inputs: 0 for images, T for clips (analysis reads
                                       which modality a task probes from it, whatever the task's name)
    probe/<task>/time_s                wall time of the task (data and feature extraction included when
                                       the task is the first to need them)
    probe/time_s                       wall time of all tasks
    probe/step                         checkpoint step (written by ``vjepa.evaluate``)

Tasks of ``default.yaml``: camvid_linear, shapes_seg (seg); shapes_det (det); cifar10_knn, cifar10_linear,
cifar10_attentive, mnist_video (attentive), mnist_video_linear (classify); ``v1.yaml`` is the smaller set
used before (no k-NN). ``fast.yaml`` (tests):
shapes_seg, shapes_det, shapes_video, shapes_video_linear. ``none.yaml``: no task. ``paper.yaml``: the
paper's image benchmarks from folders under the data root: imagenet_linear, imagenet_attentive (classify),
ade20k_linear (seg), nyu_linear (depth), and its video benchmarks from clip lists: ssv2_attentive,
k400_attentive, diving48_attentive (classify), and COCO detection: coco_det (det); see
docs/paper_scale_evaluation.md.
"""

from vjepa.probes.runner import random_encoder, run_probes

__all__ = ["run_probes", "random_encoder"]
