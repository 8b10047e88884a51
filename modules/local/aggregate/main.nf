/*
 * AGGREGATE: `fatescope aggregate` -- combine MASH's guide-level posteriors into gene-level ones
 * per day (fixed-effect meta-analysis); aggregate/gene_from_guide_mash_<mode>.csv.
 *
 * Inputs: mash/mash_guide_conservative.csv and mash/mash_guide_enriched.csv.
 */

process AGGREGATE {
    label 'process_single'

    input:
    path guide_conservative, stageAs: 'mash/mash_guide_conservative.csv'
    path guide_enriched, stageAs: 'mash/mash_guide_enriched.csv'

    output:
    path "aggregate", emit: outdir
    path "aggregate/gene_from_guide_mash_conservative.csv", emit: conservative
    path "aggregate/gene_from_guide_mash_enriched.csv", emit: enriched
    path "aggregate/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    fatescope aggregate --input ${guide_conservative} --input ${guide_enriched} --outdir aggregate ${args}
    """

    stub:
    """
    mkdir -p aggregate
    echo 'gene,n_guides,active_days' > aggregate/gene_from_guide_mash_conservative.csv
    echo 'gene,n_guides,active_days' > aggregate/gene_from_guide_mash_enriched.csv
    touch aggregate/params.yaml
    echo 'fatescope aggregate --input mash/mash_guide_conservative.csv --outdir aggregate (stub)' > aggregate/command.txt
    printf '"FATESCOPE:AGGREGATE":\\n  fatescope: stub\\n' > aggregate/versions.yml
    """
}
