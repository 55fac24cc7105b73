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

export const migrations: readonly Migration[] = [
  { version: 1, name: '0001_mailer_schema', sql: m0001 },
  { version: 2, name: '0002_send_limits', sql: m0002 },
  { version: 3, name: '0003_claim_plan', sql: m0003 },
  { version: 4, name: '0004_hot_path', sql: m0004 },
  { version: 5, name: '0005_outbox_row_layout', sql: m0005 },
  { version: 6, name: '0006_claim_by_priority', sql: m0006 },
  { version: 7, name: '0007_claim_unflushed', sql: m0007 },
  { version: 8, name: '0008_outbox_vacuum', sql: m0008 },
  { version: 9, name: '0009_failed_cancelled_index', sql: m0009 },
  { version: 10, name: '0010_correlation_index', sql: m0010 },
  { version: 11, name: '0011_enqueue_without_conflict', sql: m0011 },
  { version: 12, name: '0012_recipients_counted_first', sql: m0012 },
  { version: 13, name: '0013_enqueue_from_row_after_row', sql: m0013 },
  { version: 14, name: '0014_attachment_fields_checked', sql: m0014 },
  { version: 15, name: '0015_lease_and_timestamp_fences', sql: m0015 },
  { version: 16, name: '0016_throttled_rows_expire', sql: m0016 },
  { version: 17, name: '0017_expiring_rows_checked_in_slot', sql: m0017 },
  { version: 18, name: '0018_last_check_keeps_the_mark', sql: m0018 },
  { version: 19, name: '0019_claim_update_by_ctid', sql: m0019 },
  { version: 20, name: '0020_mime_type_and_dedupe_retry', sql: m0020 },
  { version: 21, name: '0021_hot_path_locks_in_id_order', sql: m0021 },
  { version: 22, name: '0022_expiring_pending_index', sql: m0022 },
  { version: 23, name: '0023_header_text_folded_or_refused', sql: m0023 },
  { version: 24, name: '0024_control_characters_folded_or_refused', sql: m0024 },
  { version: 25, name: '0025_failed_rows_code_in_index', sql: m0025 },
  { version: 26, name: '0026_enqueue_from_row_columns', sql: m0026 },
  { version: 27, name: '0027_trigger_correlation_id_bounded', sql: m0027 },
  { version: 28, name: '0028_attachments_read_once', sql: m0028 },
  { version: 29, name: '0029_graph_limits_at_enqueue', sql: m0029 },
  { version: 30, name: '0030_pickup_by_notified_id', sql: m0030 },
  { version: 31, name: '0031_templates_checked_when_written', sql: m0031 },
  { version: 32, name: '0032_base64_checked_in_fewer_passes', sql: m0032 },
  { version: 33, name: '0033_header_size_at_enqueue', sql: m0033 },
  { version: 34, name: '0034_trigger_on_delete_keeps_the_row', sql: m0034 },
  { version: 35, name: '0035_display_name_in_address_string', sql: m0035 },
  { version: 36, name: '0036_sent_rows_recorded_past_locked_ones', sql: m0036 },
  { version: 37, name: '0037_last_check_past_locked_rows', sql: m0037 },
  { version: 38, name: '0038_hand_written_columns_bounded', sql: m0038 },
  { version: 39, name: '0039_paused_sender_rows_left_unclaimed', sql: m0039 },
  { version: 40, name: '0040_sender_key_follows_updates', sql: m0040 },
  { version: 41, name: '0041_pause_end_probed_by_mail_from_row', sql: m0041 },
  { version: 42, name: '0042_rekey_pending_rows_only', sql: m0042 },
  { version: 43, name: '0043_addresses_without_control_or_blank_characters', sql: m0043 },
  { version: 44, name: '0044_expired_requests_refused_replays_answered', sql: m0044 },
  { version: 45, name: '0045_template_index', sql: m0045 },
  { version: 46, name: '0046_late_replay_waits_for_its_first_request', sql: m0046 },
  { version: 47, name: '0047_sent_attachment_type_counted', sql: m0047 },
  { version: 48, name: '0048_database_identity', sql: m0048 },
  { version: 50, name: '0050_caller_settings_and_trigger_rows', sql: m0050 },
  { version: 51, name: '0051_pause_end_probe_waits_for_its_row', sql: m0051 },
  { version: 54, name: '0054_request_counts_transport_tags', sql: m0054 },
  { version: 55, name: '0055_worker_lease_keys', sql: m0055 },
  { version: 56, name: '0056_past_sender_mailboxes', sql: m0056 },
  { version: 57, name: '0057_pause_end_probe_owed_until_its_row', sql: m0057 },
  { version: 59, name: '0059_replaced_sender_noted_as_owner', sql: m0059 },
  { version: 61, name: '0061_pacing_turn_interval', sql: m0061 },
  { version: 62, name: '0062_pause_end_probe_owed_by_the_database', sql: m0062 },
  { version: 69, name: '0069_pacing_rate_noted_by', sql: m0069 },
  { version: 70, name: '0070_worker_request_timeout', sql: m0070 },
  { version: 74, name: '0074_empty_html_is_no_body', sql: m0074 },
  { version: 75, name: '0075_probe_due_follows_rows', sql: m0075 },
  { version: 76, name: '0076_claim_past_paused_in_pieces', sql: m0076 },
  { version: 78, name: '0078_send_deadline_noted_with_its_start', sql: m0078 },
  { version: 79, name: '0079_worker_notes_its_probe_mailbox', sql: m0079 },
  { version: 82, name: '0082_mail_from_address_probes_after_pause', sql: m0082 },
  { version: 83, name: '0083_owed_probe_choice_in_pieces', sql: m0083 },
  { version: 84, name: '0084_worker_notes_its_lease_length', sql: m0084 },
  { version: 85, name: '0085_tenant_failed_cancelled_index', sql: m0085 },
  { version: 86, name: '0086_header_case_size_and_idn_refusals', sql: m0086 },
  { version: 87, name: '0087_replay_answered_before_header_refusals', sql: m0087 },
  { version: 91, name: '0091_probe_answered_by_its_sent_row', sql: m0091 },
  { version: 92, name: '0092_owed_probe_end_brings_its_rows_due', sql: m0092 },
  {
    version: 100,
    name: '0100_older_replay_compares_without_header_refusals',
    sql: m0100,
  },
  { version: 103, name: '0103_probe_search_skipped_within_a_second', sql: m0103 },
  { version: 104, name: '0104_endless_pause_moves_no_rows', sql: m0104 },
  { version: 107, name: '0107_pause_left_read_on_postgres_16', sql: m0107 },
  { version: 109, name: '0109_owed_probe_end_tells_of_locked_rows', sql: m0109 },
  { version: 112, name: '0112_past_sender_lookups_wait_out_throttles_and_probes', sql: m0112 },
  { version: 116, name: '0116_owed_probe_end_notes_rows_left_locked', sql: m0116 },
  { version: 117, name: '0117_send_slot_holder_lock', sql: m0117 },
  { version: 129, name: '0129_send_slot_holder_lock_gone', sql: m0129 },
  { version: 133, name: '0133_owed_probe_takes_rows_held_for_it', sql: m0133 },
  { version: 135, name: '0135_header_refusal_reads_header_fields_only', sql: m0135 },
  { version: 137, name: '0137_claim_notified_runs_one_statement_when_taken', sql: m0137 },
  { version: 146, name: '0146_owed_probe_row_held_looks_again_in_a_second', sql: m0146 },
  { version: 151, name: '0151_mail_from_claim_reads_the_shared_pause_rule', sql: m0151 },
  { version: 155, name: '0155_pending_cancel_requested_index', sql: m0155 },
  { version: 157, name: '0157_mail_from_row_held_looks_again_in_a_second', sql: m0157 },
  { version: 160, name: '0160_interrupted_send_looked_up_past_expiry', sql: m0160 },
  { version: 161, name: '0161_pause_rule_and_mail_from_claim_say_what_they_keep_to', sql: m0161 },
  { version: 162, name: '0162_claim_notes_a_lookup_only_lease', sql: m0162 },
  {
    version: 163,
    name: '0163_sender_named_as_one_address_and_a_list_in_one_string_told',
    sql: m0163,
  },
  { version: 165, name: '0165_owed_probe_end_wakes_for_rows_it_saw_waiting', sql: m0165 },
  {
    version: 168,
    name: '0168_a_display_name_holding_an_address_told_and_a_lone_recipient_named_by_its_field',
    sql: m0168,
  },
  { version: 171, name: '0171_trigger_options_named_and_notify_can_be_off', sql: m0171 },
  { version: 172, name: '0172_mailbox_pause_keeps_its_cause', sql: m0172 },
  { version: 173, name: '0173_pending_rows_after_an_error_index', sql: m0173 },
  { version: 174, name: '0174_empty_body_alone_refused', sql: m0174 },
  { version: 175, name: '0175_blank_body_refused_and_keyed_repeat_answered', sql: m0175 },
  {
    version: 177,
    name: '0177_blank_beside_a_body_counted_blank_template_refused_address_blanks_spelt_out',
    sql: m0177,
  },
  {
    version: 178,
    name: '0178_pause_moved_by_a_write_naming_no_cause_loses_it',
    sql: m0178,
  },
  {
    version: 184,
    name: '0184_pause_cause_named_by_a_0172_release_keeps_it',
    sql: m0184,
  },
  { version: 188, name: '0188_template_sender_keyed_as_rendered', sql: m0188 },
  { version: 189, name: '0189_attempt_history_entries_carry_their_kind', sql: m0189 },
  {
    version: 194,
    name: '0194_sender_blanks_read_as_every_release_checks_them',
    sql: m0194,
  },
  { version: 198, name: '0198_worker_notes_its_credential_refused', sql: m0198 },
  {
    version: 199,
    name: '0199_send_slot_holder_lock_comment_says_who_notes',
    sql: m0199,
  },
  { version: 200, name: '0200_paused_rows_moved_say_why', sql: m0200 },
  { version: 201, name: '0201_worker_notes_its_last_send', sql: m0201 },
  { version: 202, name: '0202_worker_notes_its_token_use_end', sql: m0202 },
  { version: 204, name: '0204_stopped_workers_last_send_kept', sql: m0204 },
]

export const latestVersion = migrations.at(-1)?.version ?? 0
