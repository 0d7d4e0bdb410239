-- The annotation-qa run store, schema version 7 (2 added review_queue; 3 the boundary_disagreement
-- columns for category-pair boundaries and offset distributions; 4 runs.gate_pack, object_matches.pair and
-- its boundary F / NSD columns, image_pair_scores.image_iou_mean; 5 attribute_confusion; 6 and 7 dropped
-- the primary keys of the tables whose rows grow with the batch).
--
-- One DuckDB file keeps every run. Each table below carries `run_id` (the run it belongs to); a run's
-- rows are written in one transaction, so a run is there whole or not at all. Columns are stable:
-- later versions add tables and columns, never rename or drop them, and bump `qa_schema`.
-- The reference (types, keys, meaning, example SQL) is docs/schema.md; a test keeps the two in step.
--
-- Conventions: times are TIMESTAMP in UTC (no zone); pair tables hold each unordered annotator pair once
-- with annotator_a < annotator_b; `image` is the normalised image key used to pair images across
-- annotators; `object_index` is the position in that annotator's export object list; JSON columns
-- hold figures that have no column of their own (yet), so nothing a run computes is dropped.

CREATE TABLE IF NOT EXISTS qa_schema (
    application     VARCHAR     NOT NULL,   -- always 'annotation-qa': marks the file as a run store
    schema_version  INTEGER     NOT NULL,   -- the version this row applied
    tool_version    VARCHAR     NOT NULL,   -- the qa version that applied it
    applied_at      TIMESTAMP   NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    run_id            VARCHAR     PRIMARY KEY,  -- 'YYYYMMDDTHHMMSSZ-xxxxxx', made when the run starts
    seq               INTEGER     NOT NULL UNIQUE, -- 1, 2, 3 ... in the order runs were stored
    name              VARCHAR,                  -- the batch name (manifest `name`), if any
    description       VARCHAR,                  -- the batch description (manifest `description`), if any
    started_at        TIMESTAMP   NOT NULL,
    finished_at       TIMESTAMP   NOT NULL,     -- every stage up to the gate done
    stored_at         TIMESTAMP   NOT NULL,
    tool_version      VARCHAR     NOT NULL,
    schema_version    INTEGER     NOT NULL,
    settings          JSON        NOT NULL,     -- every option the run was given
    inputs            JSON        NOT NULL,     -- [{annotator, path, format, kind, sha256, bytes, files}]
    inputs_sha256     VARCHAR     NOT NULL,     -- one fingerprint over all inputs (same inputs, same value)
    pack              VARCHAR,                  -- the rule pack that checked the run's rules (file or built-in name)
    baseline_run_id   VARCHAR,                  -- the run the gate compared against, if any
    verdict           VARCHAR,                  -- 'passed', 'failed', or NULL when not gated
    checks_evaluated  INTEGER,
    checks_failed     INTEGER,
    verdict_json      JSON,                     -- the full verdict document (docs/gate.md)
    n_annotators      INTEGER     NOT NULL,
    n_images          INTEGER     NOT NULL,
    n_objects         INTEGER     NOT NULL,
    n_findings        INTEGER     NOT NULL,
    errors            INTEGER     NOT NULL,     -- findings of severity 'error'
    warnings          INTEGER     NOT NULL,     -- findings of severity 'warning'
    -- schema 4
    gate_pack         VARCHAR                   -- the pack whose [gate] table gated the run, NULL when not gated
);

CREATE TABLE IF NOT EXISTS annotators (
    run_id      VARCHAR NOT NULL,
    annotator   VARCHAR NOT NULL,
    path        VARCHAR NOT NULL,   -- the export file or folder as given
    format      VARCHAR NOT NULL,   -- coco, coco_panoptic, ...
    sha256      VARCHAR NOT NULL,   -- fingerprint of the export (see runs.inputs)
    n_images    INTEGER NOT NULL,
    n_objects   INTEGER NOT NULL,
    n_crowd     INTEGER NOT NULL,
    n_findings  INTEGER NOT NULL,
    PRIMARY KEY (run_id, annotator)
);

CREATE TABLE IF NOT EXISTS images (
    run_id        VARCHAR   NOT NULL,
    image         VARCHAR   NOT NULL,  -- normalised file name, the key across annotators
    file_name     VARCHAR   NOT NULL,  -- as the first annotator's export declares it
    width         INTEGER   NOT NULL,
    height        INTEGER   NOT NULL,
    n_annotators  INTEGER   NOT NULL,  -- how many annotators labelled it
    annotators    VARCHAR[] NOT NULL,  -- which, sorted
    n_objects     INTEGER   NOT NULL   -- objects on it, all annotators together
    -- (run_id, image) is unique (no PRIMARY KEY: see UNINDEXED in qa/store.py)
);

CREATE TABLE IF NOT EXISTS categories (
    run_id         VARCHAR NOT NULL,
    category       VARCHAR NOT NULL,   -- canonical name after aliases
    isthing        BOOLEAN NOT NULL,
    supercategory  VARCHAR NOT NULL,
    n_objects      INTEGER NOT NULL,
    PRIMARY KEY (run_id, category)
);

CREATE TABLE IF NOT EXISTS objects (
    run_id          VARCHAR NOT NULL,
    annotator       VARCHAR NOT NULL,
    object_index    INTEGER NOT NULL,  -- position in the annotator's export object list
    image           VARCHAR NOT NULL,
    category        VARCHAR NOT NULL,
    kind            VARCHAR NOT NULL,  -- 'polygon', 'rle' or 'segment'
    iscrowd         BOOLEAN NOT NULL,
    area            DOUBLE,            -- as declared by the export, square pixels
    bbox_x          DOUBLE,            -- declared bbox, pixels: left, top, width, height
    bbox_y          DOUBLE,
    bbox_w          DOUBLE,
    bbox_h          DOUBLE,
    occluded        BOOLEAN,           -- NULL when the export has no occlusion flag
    z_order         INTEGER,           -- NULL when the export has no layer order
    group_id        INTEGER,           -- NULL when the export has no group
    file            VARCHAR NOT NULL,  -- source: the export file,
    source_section  VARCHAR,           -- the list in it ('annotations', 'segments_info', ...),
    source_index    INTEGER,           -- the position in that list,
    source_id       VARCHAR,           -- and the object's own id, as text
    attributes      JSON               -- every other attribute the export carries
    -- (run_id, annotator, object_index) is unique (no PRIMARY KEY: see UNINDEXED in qa/store.py)
);

CREATE TABLE IF NOT EXISTS object_matches (
    run_id              VARCHAR NOT NULL,
    image               VARCHAR NOT NULL,
    annotator_a         VARCHAR NOT NULL,
    annotator_b         VARCHAR NOT NULL,
    status              VARCHAR NOT NULL,  -- 'matched', 'missing' (only a), 'extra' (only b), 'ignored'
    object_index_a      INTEGER,           -- NULL when only b has the object
    object_index_b      INTEGER,           -- NULL when only a has the object
    category_a          VARCHAR,
    category_b          VARCHAR,
    label_disagreement  BOOLEAN,           -- matched with different categories
    iou                 DOUBLE,            -- mask IoU of a matched pair
    best_iou            DOUBLE,            -- largest IoU with any object of the other annotator
    intersection        BIGINT,            -- pixels
    area_a              BIGINT,            -- pixels
    area_b              BIGINT,            -- pixels
    crowd_share         DOUBLE,            -- share of an unmatched object inside the other's crowd region
    boundary_iou        DOUBLE,
    signed_offset_px    DOUBLE,            -- mean signed distance of a's boundary from b's, + outside
    assd_px             DOUBLE,
    hd95_px             DOUBLE,
    metrics             JSON,              -- every other per-pair figure (boundary counts, other tolerances, ...)
    -- schema 4
    pair                VARCHAR,           -- 'annotator_a|annotator_b', as in scores.key
    boundary_f_1px      DOUBLE,            -- boundary F at 1, 2 and 4 px (the default tolerances)
    boundary_f_2px      DOUBLE,
    boundary_f_4px      DOUBLE,
    nsd_1px             DOUBLE,            -- normalised surface distance at 1, 2 and 4 px
    nsd_2px             DOUBLE,
    nsd_4px             DOUBLE,
    signed_offset_median_px DOUBLE         -- median signed distance of a's boundary from b's
);

CREATE TABLE IF NOT EXISTS image_pair_scores (
    run_id               VARCHAR NOT NULL,
    image                VARCHAR NOT NULL,
    annotator_a          VARCHAR NOT NULL,
    annotator_b          VARCHAR NOT NULL,
    objects_a            INTEGER,      -- a's non-crowd objects on the image
    objects_b            INTEGER,
    matched              INTEGER,
    missing              INTEGER,      -- objects of a with no match in b
    extra                INTEGER,      -- objects of b with no match in a
    ignored              INTEGER,      -- unmatched objects inside the other's crowd region
    label_disagreements  INTEGER,      -- matched pairs with different categories
    mask_iou_mean        DOUBLE,
    boundary_iou_mean    DOUBLE,
    pq                   DOUBLE,
    sq                   DOUBLE,
    rq                   DOUBLE,
    metrics              JSON,         -- every other per-image-pair figure
    -- schema 4
    image_iou_mean       DOUBLE        -- image-level IoU: each category's pixels of a vs b, mean over categories
    -- (run_id, image, annotator_a, annotator_b) is unique (no PRIMARY KEY: see UNINDEXED in qa/store.py)
);

CREATE TABLE IF NOT EXISTS scores (
    run_id  VARCHAR NOT NULL,
    scope   VARCHAR NOT NULL,  -- batch, annotator_pair, annotator, category, image, ... (qa/metric_registry.py SCOPES)
    key     VARCHAR NOT NULL,  -- '' for batch; 'alice|bob' for pairs; the annotator, category or image
    metric  VARCHAR NOT NULL,  -- snake_case with its unit: mask_iou_mean, boundary_f_2px_mean, pq, ...
    value   DOUBLE,            -- NULL where the figure is undefined (NaN in the run)
    n       BIGINT  NOT NULL   -- how many items the figure summarises
    -- (run_id, scope, key, metric) is unique (no PRIMARY KEY: see UNINDEXED in qa/store.py)
);

CREATE TABLE IF NOT EXISTS boundary_disagreement (
    run_id                  VARCHAR NOT NULL,
    annotator_a             VARCHAR NOT NULL,
    annotator_b             VARCHAR NOT NULL,
    category_a              VARCHAR NOT NULL,
    category_b              VARCHAR NOT NULL,  -- differs from category_a where the labels disagree
    n_pairs                 BIGINT  NOT NULL,  -- matched object pairs summarised
    boundary_iou_mean       DOUBLE,
    signed_offset_px_mean   DOUBLE,            -- + when a draws outside b
    assd_px_mean            DOUBLE,
    hd95_px_mean            DOUBLE,
    metrics                 JSON,              -- per-tolerance figures (boundary_f_2px_mean, nsd_1px_mean, ...)
    -- schema 3: category-pair boundaries of class maps, and the offset distribution
    kind                    VARCHAR DEFAULT 'objects', -- 'objects' (matched objects) or 'interface' (the category_a|category_b boundary)
    tolerance_px            DOUBLE,            -- the tolerance of beyond_tolerance_share
    beyond_tolerance_share  DOUBLE,            -- objects: pairs with |offset| > tolerance; interface: boundary pixels
    signed_offset_px_median DOUBLE,            -- objects: median of the pairs' signed offsets
    boundary_px             DOUBLE,            -- interface: length of the boundary, pixels (mean of a's and b's)
    gains                   VARCHAR            -- interface: the category that gains in a's labels relative to b's
);

CREATE TABLE IF NOT EXISTS findings (
    run_id          VARCHAR NOT NULL,
    finding_index   INTEGER NOT NULL,  -- order in the run
    stage           VARCHAR NOT NULL,  -- 'load', 'align' or 'rules'
    code            VARCHAR NOT NULL,  -- FMT001, ALN002, VTX001, ...
    severity        VARCHAR NOT NULL,  -- 'error', 'warning' or 'info'
    message         VARCHAR NOT NULL,
    annotator       VARCHAR,
    image           VARCHAR,
    file            VARCHAR,
    source_section  VARCHAR,
    source_index    INTEGER,
    source_id       VARCHAR,
    value           DOUBLE,            -- rule violations: the measured value
    limit_value     DOUBLE             -- rule violations: the limit it broke
    -- (run_id, finding_index) is unique (no PRIMARY KEY: see UNINDEXED in qa/store.py)
);

CREATE TABLE IF NOT EXISTS review_queue (
    run_id              VARCHAR NOT NULL,
    rank                INTEGER NOT NULL,  -- 1 is reviewed first
    kind                VARCHAR NOT NULL,  -- 'image' or 'object'
    image               VARCHAR,
    reason              VARCHAR NOT NULL,  -- low_agreement, unmatched, label_disagreement, low_iou, boundary_offset, rule_error
    metric              VARCHAR NOT NULL,  -- the figure in `value`: agreement_mean, best_iou, mask_iou, signed_offset_px or a rule id
    value               DOUBLE,
    score               DOUBLE  NOT NULL,  -- in [0, 1], 1 worst; the queue's order
    reasons             INTEGER NOT NULL,  -- candidate rows the image or object had (pairs, rules)
    annotator           VARCHAR,           -- the object's annotator; for an image, its worst pair 'a|b'
    object_index        INTEGER,           -- position in that annotator's export object list
    category            VARCHAR,
    other_annotator     VARCHAR,           -- who it was compared with (several, comma-separated, for unmatched)
    other_object_index  INTEGER,
    area                DOUBLE,            -- the object's area, pixels
    file                VARCHAR,           -- source: the export file,
    source_index        INTEGER,           -- the position in its list,
    source_id           VARCHAR,           -- and the object's own id, as text
    detail              VARCHAR NOT NULL   -- the reason in words
    -- (run_id, rank) is unique (no PRIMARY KEY: see UNINDEXED in qa/store.py)
);

CREATE TABLE IF NOT EXISTS gate_results (
    run_id          VARCHAR NOT NULL,
    check_index     INTEGER NOT NULL,  -- order in the verdict
    name            VARCHAR NOT NULL,  -- 'mask_iou_mean[category=person] >= 0.8'
    metric          VARCHAR NOT NULL,
    scope           VARCHAR NOT NULL,
    key             VARCHAR NOT NULL,
    op              VARCHAR NOT NULL,  -- 'min', 'max', 'max_drop' or 'max_rise'
    bound           DOUBLE  NOT NULL,
    observed        DOUBLE,            -- NULL when the figure is missing or undefined
    n               BIGINT,
    baseline_value  DOUBLE,            -- regression checks: the baseline run's figure
    passed          BOOLEAN NOT NULL,
    message         VARCHAR NOT NULL,
    PRIMARY KEY (run_id, check_index)
);

-- schema 5: attribute agreement's confusion tables (qa.analytics.attributes)
CREATE TABLE IF NOT EXISTS attribute_confusion (
    run_id       VARCHAR NOT NULL,
    attribute    VARCHAR NOT NULL,  -- the object attribute (occluded, malignancy, a CVAT attribute, ...)
    annotator_a  VARCHAR NOT NULL,  -- the reference, when the run has one; else the pair's first annotator
    annotator_b  VARCHAR NOT NULL,  -- the annotator scored against it; else the pair's second annotator
    value_a      VARCHAR NOT NULL,  -- a's value on a matched pair, as text
    value_b      VARCHAR NOT NULL,  -- b's value on the same pair
    n            BIGINT  NOT NULL,  -- matched pairs with these two values
    PRIMARY KEY (run_id, attribute, annotator_a, annotator_b, value_a, value_b)
);
