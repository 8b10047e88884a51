/*
 * EMBED: `fatescope embed` -- kNN graph, UMAP, Leiden clusters (optional soft k-means) on the
 * integrated latent; UMAP plots (embed/umap_<key>.png for each of params.embed_plot_keys, none
 * without params.embed_umap); with params.embed_assess the integration metrics in
 * embed/metrics.json (docs/cells.md).
 *
 * Inputs: INTEGRATE's cells.h5ad; a table of cell labels for the metrics ([] when none: the
 * label column, if any, is read from the cells' obs).
 */

process EMBED {
    label 'process_medium'

    input:
    path h5ad, stageAs: 'integrate/cells.h5ad'
    path labels, stageAs: 'labels/*'

    output:
    path "embed", emit: outdir
    path "embed/cells.h5ad", emit: h5ad
    path "embed/umap_*.png", emit: plots, optional: true
    path "embed/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def labels_arg = labels ? "--labels ${labels}" : ''
    """
    fatescope embed --input ${h5ad} --outdir embed ${labels_arg} ${args}
    """

    stub:
    """
    mkdir -p embed
    touch embed/cells.h5ad embed/umap_leiden.png embed/params.yaml
    echo 'fatescope embed --input integrate/cells.h5ad --outdir embed (stub)' > embed/command.txt
    printf '"FATESCOPE:EMBED":\\n  fatescope: stub\\n' > embed/versions.yml
    """
}
