/*
 * SIMULATE: `fatescope simulate` -- a simulated time-course CRISPRi Perturb-seq experiment with
 * planted truth (samplesheet, guide map, per-sample counts / guide calls / fate probabilities,
 * synthetic motif resources, truth tables). Runs in -profile test when no --input is given.
 *
 * Input: a value that arrives once the run's container images are checked (main.nf), so that
 * nothing runs before; the script does not use it.
 */

process SIMULATE {
    label 'process_low'

    input:
    val images_checked

    output:
    path "simulate", emit: outdir
    path "simulate/samplesheet.csv", emit: samplesheet
    path "simulate/guide_map.csv", emit: guide_map
    path "simulate/versions.yml", emit: versions

    script:
    def args = task.ext.args ?: ''
    """
    fatescope simulate --outdir simulate ${args}
    """

    stub:
    """
    mkdir -p simulate/samples simulate/guides simulate/fate_probs simulate/resources simulate/truth
    printf 'sample,counts,batch,day,replicate,guides,fate_probs\\n' > simulate/samplesheet.csv
    for sample in d0_r1 d1_r1; do
        touch simulate/samples/\$sample.h5ad simulate/guides/\$sample.csv simulate/fate_probs/\$sample.csv
        printf '%s,%s,b1,%s,r1,%s,%s\\n' \$sample "\$PWD/simulate/samples/\$sample.h5ad" \${sample%_r1} \\
            "\$PWD/simulate/guides/\$sample.csv" "\$PWD/simulate/fate_probs/\$sample.csv" >> simulate/samplesheet.csv
    done
    printf 'guide_name,gene_name,is_ntc\\nNTC_1,NTC,true\\n' > simulate/guide_map.csv
    touch simulate/sim_metadata.yaml simulate/params.yaml
    echo 'fatescope simulate --outdir simulate (stub)' > simulate/command.txt
    printf '"FATESCOPE:SIMULATE":\\n  fatescope: stub\\n' > simulate/versions.yml
    """
}
