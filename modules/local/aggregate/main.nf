/*
 * AGGREGATE: `fatescope aggregate` -- combine MASH's guide-level posteriors into gene-level ones
 * per day (fixed-effect meta-analysis); aggregate/gene_from_guide_mash_<mode>.csv.
 *
 * Inputs: MASH's guide tables, mash/mash_guide_<mode>.csv, one per mode of params.mash_mode.
 */

process AGGREGATE {
    label 'process_single'

    input:
    path guide_tables, stageAs: 'mash/*', arity: '1..*'

    output:
    path "aggregate", emit: outdir
    path "aggregate/gene_from_guide_mash_conservative.csv", emit: conservative
    path "aggregate/gene_from_guide_mash_enriched.csv", emit: enriched, optional: true
    path "aggregate/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def input_args = (guide_tables instanceof List ? guide_tables : [guide_tables]).collect { table -> "--input ${table}" }.join(' ')
    """
    fatescope aggregate ${input_args} --outdir aggregate ${args}
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
