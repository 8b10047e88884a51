/*
 * PRUNE: `fatescope prune` -- cisTarget motif enrichment of every module (recovery AUC, NES,
 * leading edges, TF annotation, as ctxcore) into regulons: prune/regulons.parquet, the motif
 * enrichment table and regulons.gmt (docs/regulons.md).
 *
 * Inputs: MODULES' modules.parquet; one or more ranking databases; the motif annotations.
 * Label process_gpu: with params.use_gpu the AUCs of all modules are computed on the GPU.
 */

process PRUNE {
    label 'process_low'
    label 'process_gpu'

    input:
    path modules, stageAs: 'modules/modules.parquet'
    path ranking_dbs, stageAs: 'dbs/*', arity: '1..*'
    path motif_annotations, stageAs: 'annotations/*'

    output:
    path "prune", emit: outdir
    path "prune/regulons.parquet", emit: regulons
    path "prune/motif_enrichment.parquet", emit: enrichment
    path "prune/regulons.gmt", emit: gmt
    path "prune/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def dbs = ranking_dbs instanceof List ? ranking_dbs : [ranking_dbs]
    """
    fatescope prune --modules ${modules} --ranking-dbs '${dbs.join(',')}' --motif-annotations ${motif_annotations} --outdir prune ${args}
    """

    stub:
    """
    mkdir -p prune
    touch prune/regulons.parquet prune/motif_enrichment.parquet prune/regulons.gmt prune/params.yaml
    echo 'fatescope prune --modules modules/modules.parquet --outdir prune (stub)' > prune/command.txt
    printf '"FATESCOPE:PRUNE":\\n  fatescope: stub\\n' > prune/versions.yml
    """
}
