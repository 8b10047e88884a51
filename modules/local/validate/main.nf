/*
 * VALIDATE: `fatescope validate --no-check-files` -- check the whole samplesheet against
 * assets/schema_input.json (names, days, unique samples) and write validate/samplesheet.valid.csv.
 *
 * Input: the samplesheet as rows of cells, header first, with each file as its URI (main.nf). No
 * file is staged here: nf-schema checked on launch that each exists, and each sample's QC_LOAD
 * task stages its files once and checks their formats.
 */

process VALIDATE {
    tag "${sheet.size() - 1} samples"
    label 'process_single'

    input:
    val sheet

    output:
    path "validate", emit: outdir
    path "validate/samplesheet.valid.csv", emit: samplesheet
    path "validate/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    def csvCell = { value -> value.contains(',') || value.contains('"') ? '"' + value.replace('"', '""') + '"' : value }
    def lines = sheet.collect { row -> row.collect { cell -> csvCell.call(cell.toString()) }.join(',') }
    def quoted = lines.collect { line -> "'" + line.replace("'", "'\\''") + "'" }.join(' ')
    """
    printf '%s\\n' ${quoted} > samplesheet.csv
    fatescope validate --input samplesheet.csv --no-check-files --outdir validate ${args}
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
