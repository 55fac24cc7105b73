// migrate: released migrations pinned, applied once under races, edits and newer databases refused, compatibility with older binaries.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { resolve } from 'node:path'
import { type Clock, systemClock, waitAtMost } from '../../src/clock.ts'
import { migrate } from '../../src/db/migrate.ts'
import {
  checksumOf,
  keepsOlderBinariesWorking,
  runsOutsideTransaction,
  statementsOf,
} from '../../src/db/migration-plan.ts'
import { migrations } from '../../src/db/migrations.ts'
import { openDb } from '../../src/db/open.ts'
import { assertSchemaCurrent } from '../../src/db/schema-state.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import { testCluster } from '../preload.ts'
import { runBinary } from '../support/binary.ts'
import { adminQuery } from '../support/postgres.ts'
import { startTransactionPooler } from '../support/transaction-pooler.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const created: string[] = []
let adminUrl: string
let urlOf: (db: string) => string

async function emptyDatabase(encoding?: string): Promise<string> {
  const name = `outbox_m_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`
  await adminQuery(
    adminUrl,
    encoding === undefined
      ? `create database ${name}`
      : `create database ${name} encoding '${encoding}' lc_collate 'C' lc_ctype 'C' template template0`,
  )
  created.push(name)
  return urlOf(name)
}

/**
 * A database as migrate() leaves an empty one with every migration: a clone of the run's template,
 * which the real migrate() built (test/support/postgres.ts). For the tests that start from a
 * current schema: each full migrate of its own was most of this file's CPU ('applies every
 * migration once' and the racing migrators still migrate an empty database).
 */
async function migratedDatabase(): Promise<string> {
  const name = `outbox_m_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`
  await adminQuery(adminUrl, `create database ${name} template ${templateName}`)
  created.push(name)
  return urlOf(name)
}

let templateName: string
beforeAll(async () => {
  const cluster = await testCluster()
  adminUrl = cluster.admin
  urlOf = cluster.url
  templateName = cluster.templateName
})
// The file's tests leave about 22 databases: dropped one by one, 0.8-3.7 s each, 31 s in all at
// load ~18 (measured), past the file's 30 s default.
const DROP_ALL_TIMEOUT_MS = 180_000
afterAll(async () => {
  for (const name of created)
    await adminQuery(adminUrl, `drop database if exists ${name} with (force)`)
}, DROP_ALL_TIMEOUT_MS)

describe('migrate', () => {
  // Databases migrated by released binaries hold these names and checksums; a binary whose files
  // differ refuses to start on them. Append a release's migrations here; never change a line.
  test('released migrations are unchanged', () => {
    const released = [
      [1, '0001_mailer_schema', '5b0ba16a675a19a8e8784f7438c549661a8b6d9cdd3bc9fb3e18623f5daa1d50'],
      [2, '0002_send_limits', '25a3ed7dcbeb0ae2de4eea59aed9719de79570d565bd1b3a230543d533b7bb3c'],
      [3, '0003_claim_plan', '014735ccee1f20e132bfeac9a668a11b9c1a63bc5287dadc7175cc2af4a48d8f'],
      [4, '0004_hot_path', 'a3612b2dd03cacfcfe420d75c3c1bf0ef76b46ff3f64c500949edf9cc59d6e70'],
      [
        5,
        '0005_outbox_row_layout',
        '57f0670d90080b81e24988436647e983ed530e63b7bc0e168612fbec258c0ff4',
      ],
      [
        6,
        '0006_claim_by_priority',
        'ebeda35379707c8799b2b3225ff695ae84466d97bd96da2d808770b7e32914b2',
      ],
      [
        7,
        '0007_claim_unflushed',
        'ad12b6dfeef6d9608c8c6e9428cdedcef8f0f7e89953709e43cf74489a9144fb',
      ],
      [8, '0008_outbox_vacuum', 'a9e70ad6d3e6de7d3749117191d4b1d1a91df4eddebb1874657c437cd23ecd87'],
      [
        9,
        '0009_failed_cancelled_index',
        'fa2196153bee436ad689d1a22a3eb0f86ca9bdf369bdc7ee92ea5778d88dc5d0',
      ],
      [
        10,
        '0010_correlation_index',
        'd71d3718238d773d82fde86bac00d860a1139fc5d05f5c1805f3b650b74fb48d',
      ],
      [
        11,
        '0011_enqueue_without_conflict',
        '67daa21f6444581be3ce33d900536e50c1a4975918904d4be8e3be1b8a4526e0',
      ],
      [
        12,
        '0012_recipients_counted_first',
        '6d446aa24ab07849ce40792fb32493daf895d94a8fbd3f1ea725418deafc8a45',
      ],
      [
        13,
        '0013_enqueue_from_row_after_row',
        'f3ba2a3bb88c4b55bb01db5ab5b80063d675cd3e3f7e8e622e934c89cca8eece',
      ],
      [
        14,
        '0014_attachment_fields_checked',
        '2c58629aab40f5ce2e606635b882449f1454bccb9a9f4f6fa1acd9c8ace071f2',
      ],
      [
        15,
        '0015_lease_and_timestamp_fences',
        '3af296809817c885e78a1cad6a7b99ce9d0b03e156998f3fda2407cfbe9b807e',
      ],
      [
        16,
        '0016_throttled_rows_expire',
        '997d7f61289d08a918a255a86ac94a3d93fdf5f4bd877b8ead47c953ed4554e9',
      ],
      [
        17,
        '0017_expiring_rows_checked_in_slot',
        '06b969548076f70754999bf9a4ea0d7008908231185b8b71691574e12d6a2154',
      ],
      [
        18,
        '0018_last_check_keeps_the_mark',
        'd2614367ab0fa0fa0102c467c7ecf1666d5b63061a677316eaf8967b6f3eddcb',
      ],
      [
        19,
        '0019_claim_update_by_ctid',
        '78c1e9f7c064fd4f86e8b5814c84b2f5ecfeace6d2df7734a8d533f91fc3cdb4',
      ],
      [
        20,
        '0020_mime_type_and_dedupe_retry',
        'e37ee7dbe2c044d9ea1d2d0675c0f68b1ef46915e40502346f187e9788ea2290',
      ],
      [
        21,
        '0021_hot_path_locks_in_id_order',
        '1a467ff06eee3910c6dce58ccf2f6ceac76d0fc4895112191d67f289d912ba42',
      ],
      [
        22,
        '0022_expiring_pending_index',
        '0a383737b1fdaeffae495e55be5a50476e40f78a28f91654292ec74047c0f868',
      ],
      [
        23,
        '0023_header_text_folded_or_refused',
        'ad8732f6ad3117bf4054b63518fd87ac458841c27ae9f7f1b081d5b95a97458f',
      ],
      [
        24,
        '0024_control_characters_folded_or_refused',
        'd356342ecafd5fae91f006845ecab7559fabc9ee17b02c76db882a397fdd362e',
      ],
      [
        25,
        '0025_failed_rows_code_in_index',
        '7c0701fd7ae5d82435b0a9cb9a776c75570e8bc0ccdd42c1b34402a878f38a59',
      ],
      [
        26,
        '0026_enqueue_from_row_columns',
        '2154f95d2a12a3892f9d62b12f73443700328c650fa67c1aec9862237962afc7',
      ],
      [
        27,
        '0027_trigger_correlation_id_bounded',
        'df2742ae25031ee8aa1df8e750e0c12e4a7bec48c08c946608a2ee7dcaa19064',
      ],
      [
        28,
        '0028_attachments_read_once',
        'dc7a54e8de6b5a946c1fce68001107382ae07caff55801a9a223629456964217',
      ],
      [
        29,
        '0029_graph_limits_at_enqueue',
        '232b9c38f2e3b1ced0a45017d98a17c38f183ad29569a0880bf0d10bdcbc3840',
      ],
      [
        30,
        '0030_pickup_by_notified_id',
        '7ab3e6af4e07064fb88b623b66ba03f1fc2018e7701bf106e7f977236ee37fb7',
      ],
      [
        31,
        '0031_templates_checked_when_written',
        'ea1bb33f314896f9df9c9b0bd038a883c494027eb26f7e0cf697d5763852826d',
      ],
      [
        32,
        '0032_base64_checked_in_fewer_passes',
        'fd24b7167291de96ce7445e8acc81d622a352bd7237bb7fe60cbef54ed44e4fe',
      ],
      [
        33,
        '0033_header_size_at_enqueue',
        'eeabae2c2cf6c40d02552da90958cd87d0cc1a1d89a9045c7dc63d86b64651b6',
      ],
      [
        34,
        '0034_trigger_on_delete_keeps_the_row',
        '3b0da0bb4fb5c40db708c3da6055ef36ba62643cbe9061b9714f57bf359e4469',
      ],
      [
        35,
        '0035_display_name_in_address_string',
        '36147d678536692fa55854b24859d9d760ed78f6610133cb1b5caf2f1b3adf41',
      ],
      [
        36,
        '0036_sent_rows_recorded_past_locked_ones',
        '79a66b151bfa1144ab28d6b3c7212120eb87464b5c101f9bfa826d32a1922684',
      ],
      [
        37,
        '0037_last_check_past_locked_rows',
        'ba2f890688d54c0f56ae480246ae8a7bd7d1435d9871826ae41d0e0baa7f216b',
      ],
      [
        38,
        '0038_hand_written_columns_bounded',
        '8bc220f2785c1d7b6f0435717f3645415d899c4eb95172f583751790208244ca',
      ],
      [
        39,
        '0039_paused_sender_rows_left_unclaimed',
        '404e5fbc5adf2024f391377bbe1e7178f59a5b52cdbd3184d1a9b4e224b1fdbe',
      ],
      [
        40,
        '0040_sender_key_follows_updates',
        '73f9e23a3b8dd173538c2432d8a11b5e63ab41be54a2b64d5f5ce9283ae7cd8c',
      ],
      [
        41,
        '0041_pause_end_probed_by_mail_from_row',
        '4129de783f9f0fd6cb39fb0e5ead78c7aeb93f4aa02668c3a59a5aca34e389f1',
      ],
      [
        42,
        '0042_rekey_pending_rows_only',
        '150c27fb6c10b9570ac8f3c45fe016ef2b9f2848f2929b3bbeaf758095555e8e',
      ],
      [
        43,
        '0043_addresses_without_control_or_blank_characters',
        'f66d861da6977e1ca49a222b5ed2cd93339c919d393e80ed9fe420d979fcbe5d',
      ],
      [
        44,
        '0044_expired_requests_refused_replays_answered',
        '7eb4135cc272cb38c8a684f4705d7d6af29c3420d7eff2adb87dd65869199491',
      ],
      [
        45,
        '0045_template_index',
        'd48f3496b68ca54639ad8ece7b311c0f23227d4ed937b3ac37d8464aca8afa5f',
      ],
      [
        46,
        '0046_late_replay_waits_for_its_first_request',
        '7ba1728c2881be5fe0f977465ebb594d8c9be442c965619916e1e3bacc8814f4',
      ],
      [
        47,
        '0047_sent_attachment_type_counted',
        '5b14765fa2f443614bafcb59509ece4a23a9abe8b8e119faae5c852c15d1b59b',
      ],
      [
        48,
        '0048_database_identity',
        '02ae8c9f4504fb677d28a3f058452afddc535de3fa95789bd52781607a74e49e',
      ],
      [
        50,
        '0050_caller_settings_and_trigger_rows',
        '5876921904639d99fc48084dc3c7c3285a4a4148115f75045116063e0b47dd47',
      ],
      [
        51,
        '0051_pause_end_probe_waits_for_its_row',
        '9a22c708f4d52a9ed4a66ac98fd48af71e48e0a3abe2a2aaf132f2637fa8dc53',
      ],
      [
        54,
        '0054_request_counts_transport_tags',
        '4bd9c26e20a9cb6e1bd8fbdc644cacd5e99ef1800d3c49516e0a1c80fed95ffd',
      ],
      [
        55,
        '0055_worker_lease_keys',
        '0d1f84112cedefb3d8080614a4e0237233b30c7da9f58c96180c68da13f31872',
      ],
      [
        56,
        '0056_past_sender_mailboxes',
        '82a06091daf2a722c2a9f278067539c0a45ac0150461fa2782c489f90fecaefd',
      ],
      [
        57,
        '0057_pause_end_probe_owed_until_its_row',
        '128de6bb22ae7b83df42896df0c40a1e7dc4b759afc3ade344c843eb3b594cb2',
      ],
      [
        59,
        '0059_replaced_sender_noted_as_owner',
        'f7d1ac8973544d3b6632540015ba6f9c2cd33d0c5a86f82ae76108c35f72af96',
      ],
      [
        61,
        '0061_pacing_turn_interval',
        '13ef98bf603ee697234127088ae8e1a37979cd1cc0a66a121375431a246e3db6',
      ],
      [
        62,
        '0062_pause_end_probe_owed_by_the_database',
        '9730bec4c0aacc106f93e5320dd5b2cc1807c7b490bb99b30bb5127dd73247c5',
      ],
      [
        69,
        '0069_pacing_rate_noted_by',
        'c9eb983a00c623ef742e102871081904264e3bf0395eb014a855c9fbc0847fac',
      ],
      [
        70,
        '0070_worker_request_timeout',
        '9938f1d3a083dc5b84c29b02f206b46e13c2467911ad5b5a27f6e0d0df0c2ca0',
      ],
      [
        74,
        '0074_empty_html_is_no_body',
        '032195e181779ed69cacedda30b3e709b3ec37bd7bb1a5a6d997b6b7b52fca88',
      ],
      [
        75,
        '0075_probe_due_follows_rows',
        '7a48953349095a1ea08ae9d5f57bf17e2de60e8780a7f87167a6e8c44199cd5c',
      ],
      [
        76,
        '0076_claim_past_paused_in_pieces',
        '59aac59135483331ed071c5cc3fd99545097dc970eec82d3cb11cbd3cf8b08a4',
      ],
      [
        78,
        '0078_send_deadline_noted_with_its_start',
        '1f438f66a5b84796f6ba8fb584ead68ec7f2818e81a3466133429bc05f8ec91d',
      ],
      [
        79,
        '0079_worker_notes_its_probe_mailbox',
        '2c3e3a810f7c27a895e594631438dfda8f14a2776275e3f31f197ae4f33982fb',
      ],
      [
        82,
        '0082_mail_from_address_probes_after_pause',
        '7ccbaf7c18b62311365f357fab41ed0cff37cf516a59dcf7b0955e16224d78a9',
      ],
      [
        83,
        '0083_owed_probe_choice_in_pieces',
        '356c105299b64c6ab0c2b8f1c850d337410ccd7821e08c3dc0987001997fd705',
      ],
      [
        84,
        '0084_worker_notes_its_lease_length',
        'a9d0b04a58a173c11fa8cbdc69b9ce614190765171579dee5a4699ca309e5637',
      ],
      [
        85,
        '0085_tenant_failed_cancelled_index',
        'c7a0e56d8f783d86c483c7ecdc0d63ccaca661305cead76e9ec1995538b4643f',
      ],
      [
        86,
        '0086_header_case_size_and_idn_refusals',
        'c0d17300b561e1ae36a71d709c3a2711b5ad4da6bfa90b1f40515a547e5212ee',
      ],
      [
        87,
        '0087_replay_answered_before_header_refusals',
        'aee61bb9fd4cd7210f530a9c9d6b84d8c7dad9e88a307dd65fba943fbdf82eb6',
      ],
      [
        91,
        '0091_probe_answered_by_its_sent_row',
        '36a57fd9e27ab35765374e6273211d6446b4408e4238adb3c946852556df7a1d',
      ],
      [
        92,
        '0092_owed_probe_end_brings_its_rows_due',
        '6e3a0a9eb96c61aca4f693cd847ce6603cb63bfd3082bafd09d2c9a70bb3765e',
      ],
      [
        100,
        '0100_older_replay_compares_without_header_refusals',
        '5336039689a61b11340380899cb47026a6b428ea258d27033a4d61eeccb3c18a',
      ],
      [
        103,
        '0103_probe_search_skipped_within_a_second',
        'e6452fd7d7dedc34c263fc7f3ce9a1fc19e824ede0aa7312b5b9a1ae6d1c18e8',
      ],
      [
        104,
        '0104_endless_pause_moves_no_rows',
        '4e5476d320fe104988f06c2ac30f56e2f7b3b8aff3be1569039c3c62986b8dae',
      ],
      [
        107,
        '0107_pause_left_read_on_postgres_16',
        '17225d34c3196566563e723cf9dff2096aa7ef00410ecd68392013392658a13d',
      ],
      [
        109,
        '0109_owed_probe_end_tells_of_locked_rows',
        'c5ef508fea13f99cbad97a6c8520ee0ebe5444ab522b88a23f8502f4388d08e2',
      ],
      [
        112,
        '0112_past_sender_lookups_wait_out_throttles_and_probes',
        '292a8ce0452e0d0802a93823fe51c9b975be4f6587a44d24a3dd72c966885569',
      ],
      [
        116,
        '0116_owed_probe_end_notes_rows_left_locked',
        '6335bbf846f0e683c30c0e423bb9d0832b34a4c4e4268d33930a1405f35971a3',
      ],
      [
        117,
        '0117_send_slot_holder_lock',
        '9963f93a2afccd53a4b4771a809901c178e97731339643a58d295d365fe7390a',
      ],
      [
        129,
        '0129_send_slot_holder_lock_gone',
        '12f9f911bf3da5cf37d983b44d62ff0a278eddea8ebd80cf82bc6baa73592fd7',
      ],
      [
        133,
        '0133_owed_probe_takes_rows_held_for_it',
        'bc857298636ed8cf9b4e9764afa2a85615345d0cb04b887f4d80376969b20737',
      ],
      [
        135,
        '0135_header_refusal_reads_header_fields_only',
        '8e7ca26353b16c8f4f9ce8b5965e3bc10b88900017a2109e9f3db965d8c2932a',
      ],
      [
        137,
        '0137_claim_notified_runs_one_statement_when_taken',
        'f81f38666c6a664ecdef35fb3eaff4ea91108cc4c700b18f42158164dc02ea68',
      ],
      [
        146,
        '0146_owed_probe_row_held_looks_again_in_a_second',
        'ff2197d145ccec4af00d8ddd0e31d3e116d89ac695a26191d72fc53745c79ac6',
      ],
      [
        151,
        '0151_mail_from_claim_reads_the_shared_pause_rule',
        '5e6b92bf80ee0508dcfab3737b8569e1bee6e6841b2a2547e0924323968b8f0b',
      ],
      [
        155,
        '0155_pending_cancel_requested_index',
        '93563318fc5402cf33c37416089f346ee93ef50f6056ba6a845a1cc73e6839d9',
      ],
      [
        157,
        '0157_mail_from_row_held_looks_again_in_a_second',
        'b8a69f97f1b38df29c2da51fb19893baafa76eb0a91b7cc2e21d663bd88b5e66',
      ],
    ]
    expect(
      migrations.slice(0, released.length).map((m) => [m.version, m.name, checksumOf(m.sql)]),
    ).toEqual(released)
  })

  test('applies every migration once, then is a no-op', async () => {
    const url = await emptyDatabase()
    const first = await migrate({ url, log: silentLogger })
    expect(first.applied).toEqual(migrations.map((m) => m.version))
    const second = await migrate({ url, log: silentLogger })
    expect(second.applied).toEqual([])
    const { rows } = await adminQuery(url, 'select version, checksum from mailer.schema_migrations')
    expect(rows).toEqual(
      migrations.map((m) => ({ version: m.version, checksum: checksumOf(m.sql) })),
    )
  })

  test('six migrators racing on one database apply each migration exactly once', async () => {
    const url = await emptyDatabase()
    const results = await Promise.all(
      Array.from({ length: 6 }, () => migrate({ url, log: silentLogger })),
    )
    const applied = results.flatMap((r) => r.applied)
    expect(applied.sort((a, b) => a - b)).toEqual(migrations.map((m) => m.version))
    const { rows } = await adminQuery(
      url,
      'select count(*)::int as n from mailer.schema_migrations',
    )
    expect(rows[0].n).toBe(migrations.length)
  })

  test('refuses a migration edited after it was applied', async () => {
    const url = await migratedDatabase()
    const edited = migrations.map((m) => ({ ...m, sql: `${m.sql}\n-- edited` }))
    await expect(migrate({ url, log: silentLogger, migrations: edited })).rejects.toMatchObject({
      code: 'migration_checksum_mismatch',
    })
  })

  /** migrate through a loopback pooler: refused with config_invalid saying `said`, no schema made. */
  async function refusedThroughPooler(
    pooler: { sessions: number; statementMode?: boolean },
    said: string,
  ) {
    const url = await emptyDatabase()
    const p = await startTransactionPooler(url, pooler.sessions, pooler)
    try {
      await expect(migrate({ url: p.url, log: silentLogger })).rejects.toMatchObject({
        code: 'config_invalid',
        message: expect.stringContaining(said),
      })
      const { rows } = await adminQuery(url, `select to_regnamespace('mailer') as schema`)
      expect(rows[0].schema).toBeNull()
    } finally {
      await p.close()
    }
  }

  test('through a transaction pooler it refuses before it sets or locks anything, naming the direct URL', async () => {
    // Its session settings would stay on a server session the pooler lends the application next,
    // and its session lock could be left where no later migrate can free it. A pooler that gives
    // this client the same server session each time (PgBouncer when quiet) is the hard case.
    await refusedThroughPooler({ sessions: 1 }, 'LISTEN_DATABASE_URL')
  })

  test('through a pooler in statement mode (which refuses every transaction) it refuses before it sets or locks anything, naming the mode', async () => {
    await refusedThroughPooler({ sessions: 2, statementMode: true }, 'statement pooling mode')
  })

  test('a new install into a database whose encoding is not UTF8 is refused before anything changes, saying why and how to create a UTF8 one', async () => {
    // SQL_ASCII took every migration, and then the schema's character rules saw bytes: {"text":
    // "\u00a0"} was taken (201) and failed at send (invalid_message). LATIN1 applied 0001-0009 and
    // failed at 0010 ("character with byte sequence 0xe2 0x80 0xa6 in encoding UTF8 has no
    // equivalent in encoding LATIN1") for good. WIN1252 took them all, and refuses an emoji's mail.
    for (const encoding of ['SQL_ASCII', 'LATIN1', 'WIN1252']) {
      const url = await emptyDatabase(encoding)
      const refusal = await migrate({ url, log: silentLogger }).then(
        () => 'migrated',
        (e: { code?: string; message?: string }) => [e.code, e.message],
      )
      expect([encoding, refusal]).toEqual([
        encoding,
        [
          'config_invalid',
          expect.stringContaining(`encoding is ${encoding}: outbox-mailer needs a UTF8 database`),
        ],
      ])
      expect((refusal as string[])[1]).toContain('createdb -E UTF8 -T template0')
      expect((refusal as string[])[1]).toEndWith('Nothing was changed')
      const { rows } = await adminQuery(url, `select to_regnamespace('mailer') as schema`)
      expect([encoding, rows[0].schema]).toEqual([encoding, null])
    }
  })

  test('a database some release migrated in an encoding not UTF8 is migrated on, with a warning; in LATIN1 migrations it cannot hold are refused', async () => {
    // Refusing it would fail every deploy of a running deployment at its release command: warned of
    // instead (as check-config --connect and /readyz do), so its operator moves the data.
    const next = (sql: string) => ({ version: 1000, name: '1000_next', sql })
    async function migratedIn(encoding: string): Promise<string> {
      const url = await emptyDatabase(encoding)
      // As a release that took it left it: every embedded migration recorded.
      await adminQuery(
        url,
        `create schema mailer;
         create table mailer.schema_migrations (version integer primary key, name text not null,
           checksum text not null, applied_at timestamptz not null default now(),
           older_binaries_compatible boolean not null default false)`,
      )
      await adminQuery(
        url,
        `insert into mailer.schema_migrations (version, name, checksum)
           select * from unnest($1::int[], $2::text[], $3::text[])`,
        [
          migrations.map((m) => m.version),
          migrations.map((m) => m.name),
          migrations.map((m) => checksumOf(m.sql)),
        ],
      )
      return url
    }
    for (const encoding of ['SQL_ASCII', 'WIN1252']) {
      const lines: { level: string; msg: string }[] = []
      const log = createLogger('info', (l) => lines.push(JSON.parse(l)))
      const url = await migratedIn(encoding)
      const r = await migrate({ url, log, migrations: [...migrations, next("select '…'")] })
      expect([encoding, r.applied]).toEqual([encoding, [1000]])
      expect(lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
        expect.stringContaining(`the database's encoding is ${encoding}, not UTF8`),
      ])
    }
    const latin1 = await migratedIn('LATIN1')
    await expect(
      migrate({ url: latin1, log: silentLogger, migrations: [...migrations, next("select '…'")] }),
    ).rejects.toMatchObject({
      code: 'config_invalid',
      message: expect.stringMatching(/migration \S+ holds characters LATIN1 has not/),
    })
  })

  test('every migration applies in a WIN1252 or SQL_ASCII database an older release installed: its text holds nothing such an encoding cannot parse', async () => {
    // A release before the refusal above installed into such databases, and their upgrades run
    // every later migration in them: 0177's first E'' string spelled U+0085, which WIN1252 cannot
    // hold, and failed there. 0001 applied and recorded by hand, as that release left it.
    const [first] = migrations
    for (const encoding of ['WIN1252', 'SQL_ASCII']) {
      const url = await emptyDatabase(encoding)
      await adminQuery(url, first!.sql)
      await adminQuery(
        url,
        `create table mailer.schema_migrations (version integer primary key, name text not null,
           checksum text not null, applied_at timestamptz not null default now())`,
      )
      await adminQuery(
        url,
        'insert into mailer.schema_migrations (version, name, checksum) values ($1, $2, $3)',
        [first!.version, first!.name, checksumOf(first!.sql)],
      )
      const r = await migrate({ url, log: silentLogger })
      expect([encoding, r.applied]).toEqual([encoding, migrations.slice(1).map((m) => m.version)])
    }
  })

  test('refuses a database that is ahead of the binary', async () => {
    const url = await migratedDatabase()
    await adminQuery(
      url,
      `insert into mailer.schema_migrations (version, name, checksum) values (9999, '9999_future', 'x')`,
    )
    await expect(migrate({ url, log: silentLogger })).rejects.toMatchObject({
      code: 'schema_ahead',
    })
  })

  test('a statement_timeout set on the database does not cancel a migration', async () => {
    const url = await emptyDatabase()
    // Managed Postgres often sets one per role or database; a long index build would never finish.
    await adminQuery(
      url,
      `alter database ${new URL(url).pathname.slice(1)} set statement_timeout = '100ms'`,
    )
    const slow = { version: 1000, name: '1000_slow', sql: 'select pg_sleep(0.3)' }
    const r = await migrate({ url, log: silentLogger, migrations: [...migrations, slow] })
    expect(r.applied).toEqual([...migrations.map((m) => m.version), 1000])
    // The setting itself is in force for other sessions.
    await expect(adminQuery(url, 'select pg_sleep(0.3)')).rejects.toThrow(/statement timeout/)
  })

  describe('a database a newer release migrated', () => {
    const compatible = {
      version: 1000,
      name: '1000_new_index',
      sql: [
        '-- 1000: an index older binaries do not use.',
        '--! older-binaries-compatible',
        'create index outbox_tenant_idx on mailer.email_outbox (tenant);',
      ].join('\n'),
    }
    const breaking = {
      version: 1001,
      name: '1001_new_required_column',
      sql: `alter table mailer.email_outbox add column region text not null default 'eu'`,
    }

    test('older binaries keep working after a migration declared compatible with them', async () => {
      // Migrated but for 1000: the flags of 0001-0160 are as migrate() recorded them on the template.
      const url = await migratedDatabase()
      expect(keepsOlderBinariesWorking(compatible)).toBe(true)
      expect(migrations.filter(keepsOlderBinariesWorking).map((m) => m.version)).toEqual([
        10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
        33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 50, 51, 54, 55, 56, 57, 59,
        61, 62, 69, 70, 74, 75, 76, 78, 79, 82, 83, 84, 85, 86, 87, 91, 92, 100, 103, 104, 107, 109,
        112, 116, 117, 129, 133, 135, 137, 146, 151, 155, 157, 160, 161, 162, 163, 165, 168, 171,
        172, 173, 174, 175, 177, 178, 184, 188, 189, 194, 198, 199, 200, 201, 202, 204,
      ])
      expect(
        (await migrate({ url, log: silentLogger, migrations: [...migrations, compatible] }))
          .applied,
      ).toEqual([1000])
      const recorded = await adminQuery(
        url,
        'select version, older_binaries_compatible as c from mailer.schema_migrations where version >= 9 order by version',
      )
      expect(recorded.rows).toEqual([
        { version: 9, c: false },
        { version: 10, c: true },
        { version: 11, c: true },
        { version: 12, c: true },
        { version: 13, c: true },
        { version: 14, c: true },
        { version: 15, c: true },
        { version: 16, c: true },
        { version: 17, c: true },
        { version: 18, c: true },
        { version: 19, c: true },
        { version: 20, c: true },
        { version: 21, c: true },
        { version: 22, c: true },
        { version: 23, c: true },
        { version: 24, c: true },
        { version: 25, c: true },
        { version: 26, c: true },
        { version: 27, c: true },
        { version: 28, c: true },
        { version: 29, c: true },
        { version: 30, c: true },
        { version: 31, c: true },
        { version: 32, c: true },
        { version: 33, c: true },
        { version: 34, c: true },
        { version: 35, c: true },
        { version: 36, c: true },
        { version: 37, c: true },
        { version: 38, c: true },
        { version: 39, c: true },
        { version: 40, c: true },
        { version: 41, c: true },
        { version: 42, c: true },
        { version: 43, c: true },
        { version: 44, c: true },
        { version: 45, c: true },
        { version: 46, c: true },
        { version: 47, c: true },
        { version: 48, c: true },
        { version: 50, c: true },
        { version: 51, c: true },
        { version: 54, c: true },
        { version: 55, c: true },
        { version: 56, c: true },
        { version: 57, c: true },
        { version: 59, c: true },
        { version: 61, c: true },
        { version: 62, c: true },
        { version: 69, c: true },
        { version: 70, c: true },
        { version: 74, c: true },
        { version: 75, c: true },
        { version: 76, c: true },
        { version: 78, c: true },
        { version: 79, c: true },
        { version: 82, c: true },
        { version: 83, c: true },
        { version: 84, c: true },
        { version: 85, c: true },
        { version: 86, c: true },
        { version: 87, c: true },
        { version: 91, c: true },
        { version: 92, c: true },
        { version: 100, c: true },
        { version: 103, c: true },
        { version: 104, c: true },
        { version: 107, c: true },
        { version: 109, c: true },
        { version: 112, c: true },
        { version: 116, c: true },
        { version: 117, c: true },
        { version: 129, c: true },
        { version: 133, c: true },
        { version: 135, c: true },
        { version: 137, c: true },
        { version: 146, c: true },
        { version: 151, c: true },
        { version: 155, c: true },
        { version: 157, c: true },
        { version: 160, c: true },
        { version: 161, c: true },
        { version: 162, c: true },
        { version: 163, c: true },
        { version: 165, c: true },
        { version: 168, c: true },
        { version: 171, c: true },
        { version: 172, c: true },
        { version: 173, c: true },
        { version: 174, c: true },
        { version: 175, c: true },
        { version: 177, c: true },
        { version: 178, c: true },
        { version: 184, c: true },
        { version: 188, c: true },
        { version: 189, c: true },
        { version: 194, c: true },
        { version: 198, c: true },
        { version: 199, c: true },
        { version: 200, c: true },
        { version: 201, c: true },
        { version: 202, c: true },
        { version: 204, c: true },
        { version: 1000, c: true },
      ])
      // 0010–0204 declare it too: a binary knowing only 0001–0009 that reads the flag keeps working.
      expect(
        await migrate({ url, log: silentLogger, migrations: migrations.slice(0, 9) }),
      ).toMatchObject({
        applied: [],
        newer: [
          10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
          32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 50, 51, 54, 55, 56,
          57, 59, 61, 62, 69, 70, 74, 75, 76, 78, 79, 82, 83, 84, 85, 86, 87, 91, 92, 100, 103, 104,
          107, 109, 112, 116, 117, 129, 133, 135, 137, 146, 151, 155, 157, 160, 161, 162, 163, 165,
          168, 171, 172, 173, 174, 175, 177, 178, 184, 188, 189, 194, 198, 199, 200, 201, 202, 204,
          1000,
        ],
      })
      // The release before it: its migrate is a no-op that says why, its schema check passes.
      expect(await migrate({ url, log: silentLogger })).toMatchObject({
        applied: [],
        newer: [1000],
      })
      const h = openDb({ name: 'x', url, log: silentLogger })
      try {
        expect(await assertSchemaCurrent(h.pool, 'x')).toEqual({ newer: [1000] })
      } finally {
        await h.close()
      }
    })

    test('older binaries refuse a newer migration that did not declare them compatible', async () => {
      const url = await migratedDatabase()
      await migrate({ url, log: silentLogger, migrations: [...migrations, compatible, breaking] })
      const message = expect.stringContaining('migration 1001 (1001_new_required_column)')
      await expect(migrate({ url, log: silentLogger })).rejects.toMatchObject({
        code: 'schema_ahead',
        message,
      })
      const h = openDb({ name: 'x', url, log: silentLogger })
      try {
        await expect(assertSchemaCurrent(h.pool, 'x')).rejects.toMatchObject({
          code: 'schema_ahead',
          message,
        })
        // Not a successor of this binary's line: a newer migration, but one this binary has is missing.
        const other = [...migrations, { version: 999, name: '0999_other', sql: 'select 1' }]
        await adminQuery(url, 'delete from mailer.schema_migrations where version = 1001')
        await expect(assertSchemaCurrent(h.pool, 'x', other)).rejects.toMatchObject({
          code: 'schema_ahead',
          message: expect.stringContaining('lacks 0999_other'),
        })
      } finally {
        await h.close()
      }
    })

    test('rows written before the flag existed count as breaking, and the flag is added once', async () => {
      const url = await migratedDatabase()
      await migrate({ url, log: silentLogger, migrations: [...migrations, compatible] })
      // As a database migrated by a release before this column left it; that release records no flag.
      await adminQuery(
        url,
        'alter table mailer.schema_migrations drop column older_binaries_compatible',
      )
      const h = openDb({ name: 'x', url, log: silentLogger })
      try {
        await expect(assertSchemaCurrent(h.pool, 'x')).rejects.toMatchObject({
          code: 'schema_ahead',
        })
        await assertSchemaCurrent(h.pool, 'x', [...migrations, compatible])
      } finally {
        await h.close()
      }
      await migrate({ url, log: silentLogger, migrations: [...migrations, compatible] })
      const { rows } = await adminQuery(
        url,
        `select count(*)::int as n, bool_or(older_binaries_compatible) as any from mailer.schema_migrations`,
      )
      expect(rows).toEqual([{ n: migrations.length + 1, any: false }])
    })
  })

  test('a migrator waiting on the lock past lock_timeout fails clearly', async () => {
    const url = await emptyDatabase()
    const pg = await import('pg')
    const holder = new pg.default.Client({ connectionString: url })
    await holder.connect()
    await holder.query('select pg_advisory_lock($1)', [0x6d61696c6572])
    try {
      await expect(migrate({ url, log: silentLogger, lockTimeoutMs: 200 })).rejects.toMatchObject({
        code: 'migration_lock_timeout',
      })
    } finally {
      await holder.end()
    }
  })

  test('a wall clock stepped back while a migrator waits on the lock does not stretch lock_timeout', async () => {
    const url = await emptyDatabase()
    const pg = await import('pg')
    const holder = new pg.default.Client({ connectionString: url })
    await holder.connect()
    await holder.query('select pg_advisory_lock($1)', [0x6d61696c6572])
    // The wall clock steps back an hour at the first wait: on it, the 200 ms bound came an hour on.
    let step = 0
    const clock: Clock = {
      now: () => Date.now() + step,
      monotonic: () => performance.now(),
      sleep: (ms, signal) => {
        step = -3_600_000
        return systemClock.sleep(ms, signal)
      },
    }
    try {
      const failed = migrate({ url, log: silentLogger, lockTimeoutMs: 200, clock })
      await expect(waitAtMost(systemClock, failed, 10_000)).rejects.toMatchObject({
        code: 'migration_lock_timeout',
      })
    } finally {
      await holder.end()
    }
  })

  test('0005 rebuilds the outbox with its rows, ids, indexes, constraints and privileges intact', async () => {
    const url = await emptyDatabase()
    const upTo4 = migrations.filter((m) => m.version <= 4)
    await migrate({ url, log: silentLogger, migrations: upTo4 })
    // Privileges granted to PUBLIC (no role to create: the test needs no CREATEROLE right).
    const role = 'public'
    await adminQuery(url, `grant usage on schema mailer to ${role}`)
    await adminQuery(url, `grant select, insert on mailer.email_outbox to ${role}`)
    await adminQuery(
      url,
      `select mailer.enqueue_email(jsonb_build_object('to', 'a@example.com', 'subject', 's' || i, 'text', 't'),
                                   jsonb_build_object('dedupeKey', 'k' || i, 'priority', i))
         from generate_series(1, 5) i`,
    )
    await adminQuery(
      url,
      `update mailer.email_outbox set status = 'sent', attempts = 1, sent_at = now() where id = 2`,
    )
    // The sequence is past the highest id left: a new row must not reuse 5.
    await adminQuery(url, 'delete from mailer.email_outbox where id = 5')
    const snapshot = async () => ({
      rows: (
        await adminQuery(url, 'select to_jsonb(o) as r from mailer.email_outbox o order by id')
      ).rows,
      indexes: (
        await adminQuery(
          url,
          `select indexname, indexdef from pg_indexes where schemaname = 'mailer' and tablename = 'email_outbox' order by 1`,
        )
      ).rows,
      constraints: (
        await adminQuery(
          url,
          `select conname, pg_get_constraintdef(oid) as def from pg_constraint
            where conrelid = 'mailer.email_outbox'::regclass order by 1`,
        )
      ).rows,
      triggers: (
        await adminQuery(
          url,
          `select tgname from pg_trigger where tgrelid = 'mailer.email_outbox'::regclass and not tgisinternal`,
        )
      ).rows,
      insert: (
        await adminQuery(
          url,
          `select has_table_privilege('${role}', 'mailer.email_outbox', 'INSERT') as ok`,
        )
      ).rows[0].ok,
      update: (
        await adminQuery(
          url,
          `select has_table_privilege('${role}', 'mailer.email_outbox', 'UPDATE') as ok`,
        )
      ).rows[0].ok,
    })
    const before = await snapshot()
    expect(before.rows).toHaveLength(4)
    expect(before.insert).toBe(true)
    expect(before.update).toBe(false)

    const upTo5 = migrations.filter((m) => m.version <= 5)
    expect((await migrate({ url, log: silentLogger, migrations: upTo5 })).applied).toEqual([5])
    expect(await snapshot()).toEqual(before)
    const next = await adminQuery(
      url,
      `select mailer.enqueue_email(jsonb_build_object('to', 'a@example.com', 'subject', 'n', 'text', 't')) as id`,
    )
    expect(Number(next.rows[0].id)).toBe(6)
    // What a claim or a settlement changes is at the end of the row (see sql/0005).
    const columns = await adminQuery(
      url,
      `select attname from pg_attribute where attrelid = 'mailer.email_outbox'::regclass and attnum > 0
        order by attnum desc limit 6`,
    )
    expect(columns.rows.map((r) => r.attname).sort()).toEqual(
      [
        'attempts',
        'lease_expires_at',
        'lease_owner',
        'lease_token',
        'send_started_at',
        'status',
      ].sort(),
    )
  })

  test('a no-transaction migration runs its statements one by one, outside a transaction', async () => {
    const url = await emptyDatabase()
    const sql = [
      '-- 1000: a test of statements that no transaction may hold.',
      '--! no-transaction',
      'create table mailer.no_tx (id int);',
      '--! split',
      '-- A comment of its own, then the statement.',
      'create index concurrently no_tx_idx on mailer.no_tx (id);',
      '--! split',
      '-- Only a comment: not sent.',
    ].join('\n')
    const next = [...migrations, { version: 1000, name: '1000_no_tx', sql }]
    expect(runsOutsideTransaction(next.at(-1)!)).toBe(true)
    expect(statementsOf(next.at(-1)!)).toHaveLength(2)
    expect(migrations.filter(runsOutsideTransaction).map((m) => m.version)).toEqual([
      9, 10, 22, 25, 38, 39, 45, 50, 83, 85, 155, 160, 173, 189,
    ])
    // In a transaction, Postgres refuses CREATE INDEX CONCURRENTLY: the split is what lets it run.
    await migrate({ url, log: silentLogger, migrations })
    await expect(
      migrate({
        url,
        log: silentLogger,
        migrations: [...migrations, { ...next.at(-1)!, sql: sql.replaceAll('--!', '--') }],
      }),
    ).rejects.toThrow(/cannot run inside a transaction block|cannot be executed within a pipeline/)
    expect((await migrate({ url, log: silentLogger, migrations: next })).applied).toEqual([1000])
    const { rows } = await adminQuery(
      url,
      `select i.indisvalid as valid from pg_index i where i.indexrelid = 'mailer.no_tx_idx'::regclass`,
    )
    expect(rows).toEqual([{ valid: true }])
  })

  test('0009 interrupted by lock_timeout is not recorded; migrate again completes it', async () => {
    const url = await emptyDatabase()
    await migrate({ url, log: silentLogger, migrations: migrations.slice(0, 8) })
    const pg = await import('pg')
    // An open transaction with a snapshot: a concurrent index build waits for it to end.
    const old = new pg.default.Client({ connectionString: url })
    await old.connect()
    await old.query('begin isolation level repeatable read')
    await old.query('select count(*) from mailer.email_outbox')
    try {
      const failed = migrate({ url, log: silentLogger, lockTimeoutMs: 300 })
      await expect(failed).rejects.toMatchObject({
        message: expect.stringMatching(
          /0009_failed_cancelled_index failed: .*lock timeout.*run migrate again/,
        ),
      })
    } finally {
      await old.query('rollback')
      await old.end()
    }
    const invalid = await adminQuery(
      url,
      `select (select max(version) from mailer.schema_migrations) as version,
              (select indisvalid from pg_index
                where indexrelid = to_regclass('mailer.email_outbox_failed_cancelled_idx')) as valid`,
    )
    // Postgres left the half-built index in place (invalid, so no plan uses it).
    expect(invalid.rows).toEqual([{ version: 8, valid: false }])
    expect((await migrate({ url, log: silentLogger })).applied).toEqual([
      9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
      33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 50, 51, 54, 55, 56, 57, 59,
      61, 62, 69, 70, 74, 75, 76, 78, 79, 82, 83, 84, 85, 86, 87, 91, 92, 100, 103, 104, 107, 109,
      112, 116, 117, 129, 133, 135, 137, 146, 151, 155, 157, 160, 161, 162, 163, 165, 168, 171, 172,
      173, 174, 175, 177, 178, 184, 188, 189, 194, 198, 199, 200, 201, 202, 204,
    ])
    const { rows } = await adminQuery(
      url,
      `select indisvalid as valid, pg_get_indexdef(indexrelid) as def from pg_index
        where indexrelid = 'mailer.email_outbox_failed_cancelled_idx'::regclass`,
    )
    // As 0025 left it: 0009's index, with the code carried.
    expect(rows).toEqual([
      {
        valid: true,
        def: "CREATE INDEX email_outbox_failed_cancelled_idx ON mailer.email_outbox USING btree (status, id) INCLUDE (last_error_code) WHERE (status = ANY (ARRAY['failed'::text, 'cancelled'::text]))",
      },
    ])
  })

  test('0025 stopped between its steps: migrate again ends with one index of 0009’s name, the code carried', async () => {
    const url = await emptyDatabase()
    await migrate({ url, log: silentLogger, migrations: migrations.filter((m) => m.version < 25) })
    // As a run stopped after its third step leaves it: the new index built, the old one dropped.
    await adminQuery(
      url,
      `create index email_outbox_failed_cancelled_code_idx on mailer.email_outbox (status, id)
         include (last_error_code) where status in ('failed', 'cancelled');
       drop index mailer.email_outbox_failed_cancelled_idx`,
    )
    const upTo25 = migrations.filter((m) => m.version <= 25)
    expect((await migrate({ url, log: silentLogger, migrations: upTo25 })).applied).toEqual([25])
    const { rows } = await adminQuery(
      url,
      `select indexrelid::regclass::text as name, indisvalid as valid from pg_index
        where indrelid = 'mailer.email_outbox'::regclass
          and pg_get_indexdef(indexrelid) like '%(status, id)%'`,
    )
    expect(rows).toEqual([{ name: 'mailer.email_outbox_failed_cancelled_idx', valid: true }])
  })

  test('the command tries every database, prints each one’s result, and exits non-zero if any failed', async () => {
    const ahead = await migratedDatabase()
    await adminQuery(
      ahead,
      `insert into mailer.schema_migrations (version, name, checksum) values (9999, '9999_future', 'x')`,
    )
    const fresh = await emptyDatabase()
    // A database name the server does not have (3D000), a newer schema, then one to migrate.
    const gone = urlOf(`outbox_m_gone_${crypto.randomUUID().replaceAll('-', '').slice(0, 8)}`)
    const databases = [
      { name: 'gone', url: gone },
      { name: 'ahead', url: ahead },
      { name: 'fresh', url: fresh },
    ]
    const main = resolve(import.meta.dir, '../../src/main.ts')
    const r = await runBinary(process.execPath, [main, 'migrate'], {
      PATH: process.env.PATH ?? '',
      MAILER_DATABASES: JSON.stringify(databases),
      LOG_LEVEL: 'error',
    })
    // The first failure's exit code: 1, the login refused (3 would be the newer schema's).
    // Each failure is a JSON line too (a log pipeline drops plain text), the result a plain one.
    const out = r.stdout.trimEnd().split('\n')
    expect([
      r.code,
      out.filter((l) => !l.startsWith('{')),
      out
        .filter((l) => l.startsWith('{'))
        .map((l) => {
          const { msg, db, exitCode } = JSON.parse(l)
          return [msg, db, exitCode]
        }),
    ]).toEqual([
      1,
      [expect.stringMatching(/^fresh: applied 1, 2, .+ \(schema version \d+\)$/)],
      [
        ['migration failed', 'gone', 1],
        ['migration failed', 'ahead', 3],
      ],
    ])
    const failed = r.stderr.trimEnd().split('\n')
    expect(failed).toEqual([
      expect.stringMatching(/^gone \(MAILER_DATABASES gone\.url\): .*3D000/),
      expect.stringMatching(/^ahead: .*newer/),
      'migrate: 2 of 3 databases failed (gone, ahead); the others are migrated',
    ])
    await assertSchemaCurrentAt(fresh)
  })

  test('0039 keys the rows older binaries queued, keys every insert after it, and an older binary’s claim still takes them', async () => {
    const url = await emptyDatabase()
    await migrate({ url, log: silentLogger, migrations: migrations.slice(0, 37) })
    const message = (from?: unknown) =>
      JSON.stringify({
        to: 'rcpt@example.com',
        subject: 'Hi',
        text: 'x',
        ...(from ? { from } : {}),
      })
    const queue = async (from?: unknown) =>
      String(
        (await adminQuery(url, 'select mailer.enqueue_email($1::jsonb) as id', [message(from)]))
          .rows[0].id,
      )
    const before = [await queue(), await queue('Desk <Desk@Example.com>')]
    await migrate({ url, log: silentLogger })
    const keyOf = async (id: string) =>
      (await adminQuery(url, 'select sender_key from mailer.email_outbox where id = $1', [id]))
        .rows[0].sender_key
    // Backfilled: MAIL_FROM's row keeps none, the other its address as the gate keys it.
    expect([await keyOf(before[0]!), await keyOf(before[1]!)]).toEqual([null, 'desk@example.com'])
    // Every way in after it: enqueue_email, a template, a row written by hand (as an older binary would).
    expect(await keyOf(await queue({ address: ' Other@Example.com ', name: 'O' }))).toBe(
      'other@example.com',
    )
    await adminQuery(
      url,
      `insert into mailer.templates (name, subject, text_body, to_addresses, from_address) values
         ('plain', 's', 't', '{rcpt@example.com}', null),
         ('desk', 's', 't', '{rcpt@example.com}', 'Desk <desk@example.com>'),
         ('owner', 's', 't', '{rcpt@example.com}', '{{owner}}')`,
    )
    const fromTemplate = async (name: string) =>
      String(
        (
          await adminQuery(
            url,
            `insert into mailer.email_outbox (template, source_row) values ($1, '{"owner": "a@b.c"}') returning id`,
            [name],
          )
        ).rows[0].id,
      )
    expect(await keyOf(await fromTemplate('plain'))).toBeNull()
    expect(await keyOf(await fromTemplate('desk'))).toBe('desk@example.com')
    // Only rendering can say: never left out.
    expect(await keyOf(await fromTemplate('owner'))).toBe('?')
    const byHand = String(
      (
        await adminQuery(
          url,
          `insert into mailer.email_outbox (message) values ($1::jsonb) returning id`,
          [message('hand@example.com')],
        )
      ).rows[0].id,
    )
    expect(await keyOf(byHand)).toBe('hand@example.com')
    // An older binary claims as before: every pending row, whatever its key.
    const { rows } = await adminQuery(
      url,
      `select json_array_length(mailer.claim_batch(100, 'old', gen_random_uuid(), 60, false, 8) -> 'leases') as n`,
    )
    const pending = await adminQuery(
      url,
      `select count(*)::int as n from mailer.email_outbox where status = 'pending'`,
    )
    expect(rows[0].n).toBe(7)
    expect(pending.rows[0].n).toBe(0)
  })

  test('0040 re-keys a row whose message or template an UPDATE changes, and the rows of a template whose from_address changes; a row sent keeps its key', async () => {
    const url = await migratedDatabase()
    await adminQuery(
      url,
      `insert into mailer.templates (name, subject, text_body, to_addresses, from_address) values
         ('plain', 's', 't', '{rcpt@example.com}', null),
         ('desk', 's', 't', '{rcpt@example.com}', 'Desk <desk@example.com>')`,
    )
    const id = async (sql: string, params: unknown[] = []) =>
      String((await adminQuery(url, `${sql} returning id`, params)).rows[0].id)
    const keyOf = async (rowId: string) =>
      (await adminQuery(url, 'select sender_key from mailer.email_outbox where id = $1', [rowId]))
        .rows[0].sender_key
    const byHand = await id(
      `insert into mailer.email_outbox (message) values ('{"to": "rcpt@example.com", "subject": "s", "text": "t"}')`,
    )
    const templated = await id(
      `insert into mailer.email_outbox (template, source_row) values ('plain', '{}')`,
    )
    const sent = await id(
      `insert into mailer.email_outbox (template, source_row, status, sent_at) values ('plain', '{}', 'sent', now())`,
    )
    expect([await keyOf(byHand), await keyOf(templated)]).toEqual([null, null])
    // A message given a sender of its own by hand, then MAIL_FROM's again.
    await adminQuery(
      url,
      `update mailer.email_outbox set message = message || '{"from": "Own <Own@Example.com>"}' where id = $1`,
      [byHand],
    )
    expect(await keyOf(byHand)).toBe('own@example.com')
    await adminQuery(
      url,
      `update mailer.email_outbox set message = message - 'from' where id = $1`,
      [byHand],
    )
    expect(await keyOf(byHand)).toBeNull()
    // Another template; then that template's from_address changed: its waiting rows follow.
    await adminQuery(url, `update mailer.email_outbox set template = 'desk' where id = $1`, [
      templated,
    ])
    expect(await keyOf(templated)).toBe('desk@example.com')
    await adminQuery(
      url,
      `update mailer.templates set from_address = 'New <new@example.com>' where name = 'desk'`,
    )
    expect(await keyOf(templated)).toBe('new@example.com')
    await adminQuery(url, `update mailer.templates set from_address = null where name = 'desk'`)
    expect(await keyOf(templated)).toBeNull()
    // A sent row is never claimed again: its key is left as it was.
    await adminQuery(
      url,
      `update mailer.templates set from_address = 'x@example.com' where name = 'plain'`,
    )
    expect(await keyOf(sent)).toBeNull()
  })

  test('serve’s schema check names what to run', async () => {
    const url = await emptyDatabase()
    const h = openDb({ name: 'x', url, log: silentLogger })
    try {
      await expect(assertSchemaCurrent(h.pool, 'x')).rejects.toMatchObject({
        code: 'schema_missing',
        message: expect.stringContaining('outbox-mailer migrate'),
      })
      await migrate({ url, log: silentLogger })
      await assertSchemaCurrent(h.pool, 'x')
      const longer = [...migrations, { version: 9998, name: '9998_next', sql: 'select 1' }]
      await expect(assertSchemaCurrent(h.pool, 'x', longer)).rejects.toMatchObject({
        code: 'schema_outdated',
      })
    } finally {
      await h.close()
    }
  })
})

async function assertSchemaCurrentAt(url: string) {
  const h = openDb({ name: 'x', url, log: silentLogger })
  try {
    await assertSchemaCurrent(h.pool, 'x')
  } finally {
    await h.close()
  }
}
