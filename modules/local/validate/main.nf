/*
 * VALIDATE: `fatescope validate` -- check the samplesheet (assets/schema_input.json, plus the
 * counts formats) and write validate/samplesheet.valid.csv.
 *
 * Input: [sheet, files] from main.nf: `sheet` is the samplesheet as rows of cells (the first row
 * is the header) where a file cell holds the index of that file in `files`. Nextflow stages the
 * files as inputs/01/<name>, inputs/02/<name>, ... (one folder each, so equal names from
 * different samples cannot clash, and every executor -- local, HPC or cloud -- sees them), and
 * the script writes the samplesheet with those staged paths.
 */

process VALIDATE {
    tag "${sheet.size() - 1} samples"
    label 'process_single'

    input:
    tuple val(sheet), path(files, stageAs: 'inputs/??/*', arity: '1..*')

    output:
    path "validate", emit: outdir
    path "validate/samplesheet.valid.csv", emit: samplesheet
    path "validate/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def staged = files instanceof List ? files : [files]
    def csvCell = { value -> value.contains(',') || value.contains('"') ? '"' + value.replace('"', '""') + '"' : value }
    def lines = sheet.collect { row -> row.collect { cell -> csvCell.call(cell instanceof Integer ? staged[cell].toString() : cell.toString()) }.join(',') }
    def quoted = lines.collect { line -> "'" + line.replace("'", "'\\''") + "'" }.join(' ')
    """
    printf '%s\\n' ${quoted} > samplesheet.csv
    fatescope validate --input samplesheet.csv --outdir validate ${args}
    """

    stub:
    """
    mkdir -p validate
    echo 'sample,counts,batch,day,replicate,guides,fate_probs' > validate/samplesheet.valid.csv
    touch validate/params.yaml
    echo 'fatescope validate --input samplesheet.csv --outdir validate (stub)' > validate/command.txt
    printf '"FATESCOPE:VALIDATE":\\n  fatescope: stub\\n' > validate/versions.yml
    """
}
