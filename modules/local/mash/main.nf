/*
 * MASH: `fatescope mash` -- shrink fate-fit's daywise gene and guide effects with mash, in the
 * conservative (canonical covariances) and enriched (canonical + ED) modes; into mash/
 * (docs/mash.md). params.mash_engine 'r' runs mashr in the R image (conf/modules.config). Label
 * process_gpu: the Python engine's likelihoods and posteriors on CUDA when params.use_gpu.
 *
 * Inputs: fate/gene_daywise_for_mash.csv and fate/guide_daywise_for_mash.csv; a saved fit
 * (params.mash_fixg_fit, [] otherwise); MASH_FIT's and the MASH_CHUNK folders when
 * params.mash_effect_chunk_size splits the posteriors over tasks ([] otherwise): then this task only
 * gathers them (`--gather`: the one-task outputs, to the bit). The outputs below are those of the
 * default params.mash_mode (both modes), which AGGREGATE and RANK read.
 */

process MASH {
    label 'process_low'
    label 'process_gpu'

    input:
    path gene_daywise, stageAs: 'fate/gene_daywise_for_mash.csv'
    path guide_daywise, stageAs: 'fate/guide_daywise_for_mash.csv'
    path fixg_fit, stageAs: 'fixg/*'
    path chunks, stageAs: 'chunks/??/*'

    output:
    path "mash", emit: outdir
    path "mash/mash_gene_conservative.csv", emit: gene_conservative
    path "mash/mash_gene_enriched.csv", emit: gene_enriched, optional: true
    path "mash/mash_guide_conservative.csv", emit: guide_conservative
    path "mash/mash_guide_enriched.csv", emit: guide_enriched, optional: true
    path "mash/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def fixg_arg = fixg_fit ? "--fixg-fit ${fixg_fit}" : ''
    def gathered = chunks instanceof List ? chunks : [chunks]
    def tables = gathered ? gathered.collect { folder -> "--gather ${folder}" }.join(' ')
        : "--input ${gene_daywise} --input ${guide_daywise} ${fixg_arg}"
    """
    fatescope mash ${tables} --outdir mash ${args}
    """

    stub:
    """
    mkdir -p mash
    for kind in gene guide; do
        for mode in conservative enriched; do
            echo 'gene,postmean_d0,postsd_d0,lfsr_d0' > mash/mash_\${kind}_\${mode}.csv
            echo '{}' > mash/mash_\${kind}_\${mode}_fit.json
        done
    done
    touch mash/mash_gene_conservative.csv mash/mash_gene_enriched.csv
    touch mash/mash_guide_conservative.csv mash/mash_guide_enriched.csv mash/params.yaml
    echo 'fatescope mash --input fate/gene_daywise_for_mash.csv --outdir mash (stub)' > mash/command.txt
    printf '"FATESCOPE:MASH":\\n  fatescope: stub\\n' > mash/versions.yml
    """
}
