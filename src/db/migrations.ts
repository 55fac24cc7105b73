// The ordered list of schema migrations, embedded in the binary as text.
import m0001 from '../../sql/0001_mailer_schema.sql' with { type: 'text' }
import m0002 from '../../sql/0002_send_limits.sql' with { type: 'text' }
import m0003 from '../../sql/0003_claim_plan.sql' with { type: 'text' }
import m0004 from '../../sql/0004_hot_path.sql' with { type: 'text' }
import m0005 from '../../sql/0005_outbox_row_layout.sql' with { type: 'text' }
import m0006 from '../../sql/0006_claim_by_priority.sql' with { type: 'text' }
import m0007 from '../../sql/0007_claim_unflushed.sql' with { type: 'text' }
import m0008 from '../../sql/0008_outbox_vacuum.sql' with { type: 'text' }
import m0009 from '../../sql/0009_failed_cancelled_index.sql' with { type: 'text' }
import m0010 from '../../sql/0010_correlation_index.sql' with { type: 'text' }
import m0011 from '../../sql/0011_enqueue_without_conflict.sql' with { type: 'text' }
import m0012 from '../../sql/0012_recipients_counted_first.sql' with { type: 'text' }
import m0013 from '../../sql/0013_enqueue_from_row_after_row.sql' with { type: 'text' }
import m0014 from '../../sql/0014_attachment_fields_checked.sql' with { type: 'text' }
import m0015 from '../../sql/0015_lease_and_timestamp_fences.sql' with { type: 'text' }
import m0016 from '../../sql/0016_throttled_rows_expire.sql' with { type: 'text' }
import m0017 from '../../sql/0017_expiring_rows_checked_in_slot.sql' with { type: 'text' }
import m0018 from '../../sql/0018_last_check_keeps_the_mark.sql' with { type: 'text' }
import m0019 from '../../sql/0019_claim_update_by_ctid.sql' with { type: 'text' }
import m0020 from '../../sql/0020_mime_type_and_dedupe_retry.sql' with { type: 'text' }
import m0021 from '../../sql/0021_hot_path_locks_in_id_order.sql' with { type: 'text' }
import m0022 from '../../sql/0022_expiring_pending_index.sql' with { type: 'text' }
import m0023 from '../../sql/0023_header_text_folded_or_refused.sql' with { type: 'text' }
import m0024 from '../../sql/0024_control_characters_folded_or_refused.sql' with { type: 'text' }
import m0025 from '../../sql/0025_failed_rows_code_in_index.sql' with { type: 'text' }
import m0026 from '../../sql/0026_enqueue_from_row_columns.sql' with { type: 'text' }
import m0027 from '../../sql/0027_trigger_correlation_id_bounded.sql' with { type: 'text' }
import m0028 from '../../sql/0028_attachments_read_once.sql' with { type: 'text' }
import m0029 from '../../sql/0029_graph_limits_at_enqueue.sql' with { type: 'text' }
import m0030 from '../../sql/0030_pickup_by_notified_id.sql' with { type: 'text' }
import m0031 from '../../sql/0031_templates_checked_when_written.sql' with { type: 'text' }
import m0032 from '../../sql/0032_base64_checked_in_fewer_passes.sql' with { type: 'text' }
import m0033 from '../../sql/0033_header_size_at_enqueue.sql' with { type: 'text' }
import m0034 from '../../sql/0034_trigger_on_delete_keeps_the_row.sql' with { type: 'text' }
import m0035 from '../../sql/0035_display_name_in_address_string.sql' with { type: 'text' }
import m0036 from '../../sql/0036_sent_rows_recorded_past_locked_ones.sql' with { type: 'text' }
import m0037 from '../../sql/0037_last_check_past_locked_rows.sql' with { type: 'text' }
import m0038 from '../../sql/0038_hand_written_columns_bounded.sql' with { type: 'text' }
import m0039 from '../../sql/0039_paused_sender_rows_left_unclaimed.sql' with { type: 'text' }
import m0040 from '../../sql/0040_sender_key_follows_updates.sql' with { type: 'text' }
import m0041 from '../../sql/0041_pause_end_probed_by_mail_from_row.sql' with { type: 'text' }
import m0042 from '../../sql/0042_rekey_pending_rows_only.sql' with { type: 'text' }
import m0043 from '../../sql/0043_addresses_without_control_or_blank_characters.sql' with {
  type: 'text',
}
import m0044 from '../../sql/0044_expired_requests_refused_replays_answered.sql' with {
  type: 'text',
}
import m0045 from '../../sql/0045_template_index.sql' with { type: 'text' }
import m0046 from '../../sql/0046_late_replay_waits_for_its_first_request.sql' with { type: 'text' }
import m0047 from '../../sql/0047_sent_attachment_type_counted.sql' with { type: 'text' }
import m0048 from '../../sql/0048_database_identity.sql' with { type: 'text' }
import m0050 from '../../sql/0050_caller_settings_and_trigger_rows.sql' with { type: 'text' }
import m0051 from '../../sql/0051_pause_end_probe_waits_for_its_row.sql' with { type: 'text' }
import m0054 from '../../sql/0054_request_counts_transport_tags.sql' with { type: 'text' }
import m0055 from '../../sql/0055_worker_lease_keys.sql' with { type: 'text' }
import m0056 from '../../sql/0056_past_sender_mailboxes.sql' with { type: 'text' }
import m0057 from '../../sql/0057_pause_end_probe_owed_until_its_row.sql' with { type: 'text' }
import m0059 from '../../sql/0059_replaced_sender_noted_as_owner.sql' with { type: 'text' }
import m0061 from '../../sql/0061_pacing_turn_interval.sql' with { type: 'text' }
import m0062 from '../../sql/0062_pause_end_probe_owed_by_the_database.sql' with { type: 'text' }
import m0069 from '../../sql/0069_pacing_rate_noted_by.sql' with { type: 'text' }
import m0070 from '../../sql/0070_worker_request_timeout.sql' with { type: 'text' }
import m0074 from '../../sql/0074_empty_html_is_no_body.sql' with { type: 'text' }
import m0075 from '../../sql/0075_probe_due_follows_rows.sql' with { type: 'text' }
import m0076 from '../../sql/0076_claim_past_paused_in_pieces.sql' with { type: 'text' }
import m0078 from '../../sql/0078_send_deadline_noted_with_its_start.sql' with { type: 'text' }
import m0079 from '../../sql/0079_worker_notes_its_probe_mailbox.sql' with { type: 'text' }
import m0082 from '../../sql/0082_mail_from_address_probes_after_pause.sql' with { type: 'text' }
import m0083 from '../../sql/0083_owed_probe_choice_in_pieces.sql' with { type: 'text' }
import m0084 from '../../sql/0084_worker_notes_its_lease_length.sql' with { type: 'text' }
import m0085 from '../../sql/0085_tenant_failed_cancelled_index.sql' with { type: 'text' }
import m0086 from '../../sql/0086_header_case_size_and_idn_refusals.sql' with { type: 'text' }
import m0087 from '../../sql/0087_replay_answered_before_header_refusals.sql' with { type: 'text' }
import m0091 from '../../sql/0091_probe_answered_by_its_sent_row.sql' with { type: 'text' }
import m0092 from '../../sql/0092_owed_probe_end_brings_its_rows_due.sql' with { type: 'text' }
import m0100 from '../../sql/0100_older_replay_compares_without_header_refusals.sql' with {
  type: 'text',
}
import m0103 from '../../sql/0103_probe_search_skipped_within_a_second.sql' with { type: 'text' }
import m0104 from '../../sql/0104_endless_pause_moves_no_rows.sql' with { type: 'text' }
import m0107 from '../../sql/0107_pause_left_read_on_postgres_16.sql' with { type: 'text' }
import m0109 from '../../sql/0109_owed_probe_end_tells_of_locked_rows.sql' with { type: 'text' }
import m0112 from '../../sql/0112_past_sender_lookups_wait_out_throttles_and_probes.sql' with {
  type: 'text',
}
import m0116 from '../../sql/0116_owed_probe_end_notes_rows_left_locked.sql' with { type: 'text' }
import m0117 from '../../sql/0117_send_slot_holder_lock.sql' with { type: 'text' }
import m0129 from '../../sql/0129_send_slot_holder_lock_gone.sql' with { type: 'text' }
import m0133 from '../../sql/0133_owed_probe_takes_rows_held_for_it.sql' with { type: 'text' }
import m0135 from '../../sql/0135_header_refusal_reads_header_fields_only.sql' with { type: 'text' }
import m0137 from '../../sql/0137_claim_notified_runs_one_statement_when_taken.sql' with {
  type: 'text',
}
import m0146 from '../../sql/0146_owed_probe_row_held_looks_again_in_a_second.sql' with {
  type: 'text',
}
import m0151 from '../../sql/0151_mail_from_claim_reads_the_shared_pause_rule.sql' with {
  type: 'text',
}
import m0155 from '../../sql/0155_pending_cancel_requested_index.sql' with { type: 'text' }
import m0157 from '../../sql/0157_mail_from_row_held_looks_again_in_a_second.sql' with {
  type: 'text',
}
import m0160 from '../../sql/0160_interrupted_send_looked_up_past_expiry.sql' with { type: 'text' }
import m0161 from '../../sql/0161_pause_rule_and_mail_from_claim_say_what_they_keep_to.sql' with {
  type: 'text',
}
import m0162 from '../../sql/0162_claim_notes_a_lookup_only_lease.sql' with { type: 'text' }
import m0163 from '../../sql/0163_sender_named_as_one_address_and_a_list_in_one_string_told.sql' with {
  type: 'text',
}
import m0165 from '../../sql/0165_owed_probe_end_wakes_for_rows_it_saw_waiting.sql' with {
  type: 'text',
}
import m0168 from '../../sql/0168_a_display_name_holding_an_address_told_and_a_lone_recipient_named_by_its_field.sql' with {
  type: 'text',
}
import m0171 from '../../sql/0171_trigger_options_named_and_notify_can_be_off.sql' with {
  type: 'text',
}
import m0172 from '../../sql/0172_mailbox_pause_keeps_its_cause.sql' with { type: 'text' }
import m0173 from '../../sql/0173_pending_rows_after_an_error_index.sql' with { type: 'text' }
import m0174 from '../../sql/0174_empty_body_alone_refused.sql' with { type: 'text' }
import m0175 from '../../sql/0175_blank_body_refused_and_keyed_repeat_answered.sql' with {
  type: 'text',
}
import m0177 from '../../sql/0177_blank_beside_a_body_counted_blank_template_refused_address_blanks_spelt_out.sql' with {
  type: 'text',
}
import m0178 from '../../sql/0178_pause_moved_by_a_write_naming_no_cause_loses_it.sql' with {
  type: 'text',
}
import m0184 from '../../sql/0184_pause_cause_named_by_a_0172_release_keeps_it.sql' with {
  type: 'text',
}
import m0188 from '../../sql/0188_template_sender_keyed_as_rendered.sql' with { type: 'text' }
import m0189 from '../../sql/0189_attempt_history_entries_carry_their_kind.sql' with {
  type: 'text',
}
import m0194 from '../../sql/0194_sender_blanks_read_as_every_release_checks_them.sql' with {
  type: 'text',
}
import m0198 from '../../sql/0198_worker_notes_its_credential_refused.sql' with { type: 'text' }
import m0199 from '../../sql/0199_send_slot_holder_lock_comment_says_who_notes.sql' with {
  type: 'text',
}
import m0200 from '../../sql/0200_paused_rows_moved_say_why.sql' with { type: 'text' }
import m0201 from '../../sql/0201_worker_notes_its_last_send.sql' with { type: 'text' }
import m0202 from '../../sql/0202_worker_notes_its_token_use_end.sql' with { type: 'text' }
import m0204 from '../../sql/0204_stopped_workers_last_send_kept.sql' with { type: 'text' }

export interface Migration {
  version: number
  name: string
  sql: string
}

/**
 * Each migration's file name (without `.sql`) beside its text, in order; its version is the name's
 * number. The imports above stay one static line per file: `bun build --compile` embeds only what
 * it can see imported (test/unit/migration-list.test.ts checks this list against sql/).
 */
const FILES: readonly (readonly [name: string, sql: string])[] = [
  ['0001_mailer_schema', m0001],
  ['0002_send_limits', m0002],
  ['0003_claim_plan', m0003],
  ['0004_hot_path', m0004],
  ['0005_outbox_row_layout', m0005],
  ['0006_claim_by_priority', m0006],
  ['0007_claim_unflushed', m0007],
  ['0008_outbox_vacuum', m0008],
  ['0009_failed_cancelled_index', m0009],
  ['0010_correlation_index', m0010],
  ['0011_enqueue_without_conflict', m0011],
  ['0012_recipients_counted_first', m0012],
  ['0013_enqueue_from_row_after_row', m0013],
  ['0014_attachment_fields_checked', m0014],
  ['0015_lease_and_timestamp_fences', m0015],
  ['0016_throttled_rows_expire', m0016],
  ['0017_expiring_rows_checked_in_slot', m0017],
  ['0018_last_check_keeps_the_mark', m0018],
  ['0019_claim_update_by_ctid', m0019],
  ['0020_mime_type_and_dedupe_retry', m0020],
  ['0021_hot_path_locks_in_id_order', m0021],
  ['0022_expiring_pending_index', m0022],
  ['0023_header_text_folded_or_refused', m0023],
  ['0024_control_characters_folded_or_refused', m0024],
  ['0025_failed_rows_code_in_index', m0025],
  ['0026_enqueue_from_row_columns', m0026],
  ['0027_trigger_correlation_id_bounded', m0027],
  ['0028_attachments_read_once', m0028],
  ['0029_graph_limits_at_enqueue', m0029],
  ['0030_pickup_by_notified_id', m0030],
  ['0031_templates_checked_when_written', m0031],
  ['0032_base64_checked_in_fewer_passes', m0032],
  ['0033_header_size_at_enqueue', m0033],
  ['0034_trigger_on_delete_keeps_the_row', m0034],
  ['0035_display_name_in_address_string', m0035],
  ['0036_sent_rows_recorded_past_locked_ones', m0036],
  ['0037_last_check_past_locked_rows', m0037],
  ['0038_hand_written_columns_bounded', m0038],
  ['0039_paused_sender_rows_left_unclaimed', m0039],
  ['0040_sender_key_follows_updates', m0040],
  ['0041_pause_end_probed_by_mail_from_row', m0041],
  ['0042_rekey_pending_rows_only', m0042],
  ['0043_addresses_without_control_or_blank_characters', m0043],
  ['0044_expired_requests_refused_replays_answered', m0044],
  ['0045_template_index', m0045],
  ['0046_late_replay_waits_for_its_first_request', m0046],
  ['0047_sent_attachment_type_counted', m0047],
  ['0048_database_identity', m0048],
  ['0050_caller_settings_and_trigger_rows', m0050],
  ['0051_pause_end_probe_waits_for_its_row', m0051],
  ['0054_request_counts_transport_tags', m0054],
  ['0055_worker_lease_keys', m0055],
  ['0056_past_sender_mailboxes', m0056],
  ['0057_pause_end_probe_owed_until_its_row', m0057],
  ['0059_replaced_sender_noted_as_owner', m0059],
  ['0061_pacing_turn_interval', m0061],
  ['0062_pause_end_probe_owed_by_the_database', m0062],
  ['0069_pacing_rate_noted_by', m0069],
  ['0070_worker_request_timeout', m0070],
  ['0074_empty_html_is_no_body', m0074],
  ['0075_probe_due_follows_rows', m0075],
  ['0076_claim_past_paused_in_pieces', m0076],
  ['0078_send_deadline_noted_with_its_start', m0078],
  ['0079_worker_notes_its_probe_mailbox', m0079],
  ['0082_mail_from_address_probes_after_pause', m0082],
  ['0083_owed_probe_choice_in_pieces', m0083],
  ['0084_worker_notes_its_lease_length', m0084],
  ['0085_tenant_failed_cancelled_index', m0085],
  ['0086_header_case_size_and_idn_refusals', m0086],
  ['0087_replay_answered_before_header_refusals', m0087],
  ['0091_probe_answered_by_its_sent_row', m0091],
  ['0092_owed_probe_end_brings_its_rows_due', m0092],
  ['0100_older_replay_compares_without_header_refusals', m0100],
  ['0103_probe_search_skipped_within_a_second', m0103],
  ['0104_endless_pause_moves_no_rows', m0104],
  ['0107_pause_left_read_on_postgres_16', m0107],
  ['0109_owed_probe_end_tells_of_locked_rows', m0109],
  ['0112_past_sender_lookups_wait_out_throttles_and_probes', m0112],
  ['0116_owed_probe_end_notes_rows_left_locked', m0116],
  ['0117_send_slot_holder_lock', m0117],
  ['0129_send_slot_holder_lock_gone', m0129],
  ['0133_owed_probe_takes_rows_held_for_it', m0133],
  ['0135_header_refusal_reads_header_fields_only', m0135],
  ['0137_claim_notified_runs_one_statement_when_taken', m0137],
  ['0146_owed_probe_row_held_looks_again_in_a_second', m0146],
  ['0151_mail_from_claim_reads_the_shared_pause_rule', m0151],
  ['0155_pending_cancel_requested_index', m0155],
  ['0157_mail_from_row_held_looks_again_in_a_second', m0157],
  ['0160_interrupted_send_looked_up_past_expiry', m0160],
  ['0161_pause_rule_and_mail_from_claim_say_what_they_keep_to', m0161],
  ['0162_claim_notes_a_lookup_only_lease', m0162],
  ['0163_sender_named_as_one_address_and_a_list_in_one_string_told', m0163],
  ['0165_owed_probe_end_wakes_for_rows_it_saw_waiting', m0165],
  ['0168_a_display_name_holding_an_address_told_and_a_lone_recipient_named_by_its_field', m0168],
  ['0171_trigger_options_named_and_notify_can_be_off', m0171],
  ['0172_mailbox_pause_keeps_its_cause', m0172],
  ['0173_pending_rows_after_an_error_index', m0173],
  ['0174_empty_body_alone_refused', m0174],
  ['0175_blank_body_refused_and_keyed_repeat_answered', m0175],
  ['0177_blank_beside_a_body_counted_blank_template_refused_address_blanks_spelt_out', m0177],
  ['0178_pause_moved_by_a_write_naming_no_cause_loses_it', m0178],
  ['0184_pause_cause_named_by_a_0172_release_keeps_it', m0184],
  ['0188_template_sender_keyed_as_rendered', m0188],
  ['0189_attempt_history_entries_carry_their_kind', m0189],
  ['0194_sender_blanks_read_as_every_release_checks_them', m0194],
  ['0198_worker_notes_its_credential_refused', m0198],
  ['0199_send_slot_holder_lock_comment_says_who_notes', m0199],
  ['0200_paused_rows_moved_say_why', m0200],
  ['0201_worker_notes_its_last_send', m0201],
  ['0202_worker_notes_its_token_use_end', m0202],
  ['0204_stopped_workers_last_send_kept', m0204],
]

export const migrations: readonly Migration[] = FILES.map(([name, sql]) => ({
  version: Number.parseInt(name, 10),
  name,
  sql,
}))

export const latestVersion = migrations.at(-1)?.version ?? 0
