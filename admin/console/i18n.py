"""The console's two languages: Norwegian bokmål (the default) and English.

The language is, in order: a `?lang=` switch (remembered in a cookie), that cookie, the
browser's Accept-Language (nb, no, nn -> Norwegian; en -> English), else Norwegian. Amounts and
dates are written the Norwegian way in both (`admin.console.formats`).
"""
from __future__ import annotations

LANGUAGES = ("nb", "en")
DEFAULT = "nb"
_ALIASES = {"nb": "nb", "no": "nb", "nn": "nb", "en": "en"}

# key -> (bokmål, English). `{name}` placeholders are filled by `t(key, name=...)`.
MESSAGES: dict[str, tuple[str, str]] = {
    # frame
    "skip": ("Hopp til innholdet", "Skip to content"),
    "nav": ("Hovedmeny", "Main menu"),
    "switch_language": ("English", "Norsk"),
    "signed_in_as": ("Innlogget som {user}", "Signed in as {user}"),
    "sign_out": ("Logg ut", "Sign out"),
    "overview": ("Oversikt", "Overview"),
    "fetch": ("Hent innbetalinger", "Fetch payments"),
    "fetch_title": ("Hent innbetalinger fra Visma Business", "Fetch payments from Visma Business"),
    "dead_letters": ("Feilede overføringer", "Failed transfers"),
    "settings": ("Innstillinger", "Settings"),
    "reconcile": ("Avstemming", "Reconciliation"),
    "audit": ("Revisjonslogg", "Audit log"),
    "error": ("Feil", "Error"),
    "not_allowed": ("Du har ikke tilgang til dette.", "You do not have access to this."),
    "no_permission": ("Brukeren din har ingen av tilgangene til integrasjonen. Be en med tilgangen «integrasjon» om "
                      "å legge deg i en gruppe.",
                      "Your user holds none of the integration's permissions. Ask someone with the «integration» "
                      "permission to add you to a group."),
    "not_found": ("Finnes ikke (lenger).", "Does not exist (any more)."),
    "try_again": ("Prøv igjen om litt.", "Try again shortly."),
    "yes": ("Ja", "Yes"),
    "no": ("Nei", "No"),
    "none": ("Ingen", "None"),
    "never": ("Aldri", "Never"),
    "show": ("Vis", "Show"),
    "details": ("Detaljer", "Details"),
    "back": ("Tilbake", "Back"),
    "all": ("Alle", "All"),
    # sign-in
    "sign_in": ("Logg inn", "Sign in"),
    "sign_in_intro": ("Logg inn med din personlige nøkkel (token), eller åpne innloggingslenken du har fått.",
                      "Sign in with your personal token, or open the sign-in link you were given."),
    "token": ("Personlig nøkkel", "Personal token"),
    "token_hint": ("Begynner med vb2po_. Du får den av en med tilgangen «integrasjon».",
                   "Starts with vb2po_. Someone with the «integration» permission gives it to you."),
    "signing_in": ("Logger inn …", "Signing in …"),
    "bad_token": ("Innloggingen mislyktes: nøkkelen er ukjent, utløpt eller trukket tilbake.",
                  "Sign-in failed: the token is unknown, expired or revoked."),
    "throttled": ("For mange mislykkede innlogginger fra denne adressen. Prøv igjen om {seconds} sekunder.",
                  "Too many failed sign-ins from this address. Try again in {seconds} seconds."),
    "signed_out": ("Du er logget ut.", "You are signed out."),
    "session_ended": ("Økten er avsluttet. Logg inn på nytt.", "Your session has ended. Please sign in again."),
    "csrf_failed": ("Skjemaet var utløpt. Prøv igjen.", "The form had expired. Please try again."),
    # overview
    "overview_intro": ("Slik står det til med overføringen for hver fakturaklient. Siden oppdaterer seg selv.",
                       "How the transfer stands for each invoice client. The page refreshes itself."),
    "integration_off": ("Integrasjonen er slått av: ingenting hentes fra Visma Business.",
                        "The integration is switched off: nothing is read from Visma Business."),
    "visma_company": ("Visma-firma {no}", "Visma company {no}"),
    "last_poll": ("Siste vellykkede henting fra Visma", "Last successful poll of Visma"),
    "last_failure": ("Siste feil", "Last failure"),
    "registered_today": ("Registrert i PowerOffice i dag", "Registered in PowerOffice today"),
    "registered_week": ("Registrert denne uken", "Registered this week"),
    "payments_count": ("{count} innbetalinger", "{count} payments"),
    "payments_one": ("1 innbetaling", "1 payment"),
    "dead_letters_open": ("Åpne feilede overføringer", "Open failed transfers"),
    "blocked_customers": ("Kunder sperret for timeføring", "Customers blocked for time registration"),
    "last_reconcile": ("Avvik ved siste avstemming", "Differences at the last reconciliation"),
    "no_reconcile": ("Ingen avstemming siden oppstart", "No reconciliation since start"),
    "reconcile_open": ("{count} åpne avvik ({when})", "{count} open differences ({when})"),
    "updated": ("Oppdatert {when}", "Updated {when}"),
    "pause_refresh": ("Stopp automatisk oppdatering", "Pause automatic refresh"),
    "resume_refresh": ("Start automatisk oppdatering", "Resume automatic refresh"),
    "no_clients": ("Ingen fakturaklienter er tildelt deg.", "No invoice clients are assigned to you."),
    "seconds_ago": ("for {n} s siden", "{n} s ago"),
    "minutes_ago": ("for {n} min siden", "{n} min ago"),
    "hours_ago": ("for {n} t siden", "{n} h ago"),
    "days_ago": ("for {n} d siden", "{n} d ago"),
    # fetch
    "fetch_intro": ("Henter nye innbetalinger fra Visma Business nå, i stedet for å vente på neste runde, og "
                    "følger dem til de er registrert i PowerOffice.",
                    "Reads new payments from Visma Business now instead of waiting for the next round, and "
                    "follows them until they are registered in PowerOffice."),
    "fetch_one": ("For én fakturaklient", "For one invoice client"),
    "fetch_all": ("For alle fakturaklienter", "For all invoice clients"),
    "fetch_all_intro": ("Henter for alle fakturaklientene, hver fra sitt Visma-firma.",
                        "Fetches for every invoice client, each from its Visma company."),
    "client": ("Fakturaklient", "Invoice client"),
    "fetch_button": ("Hent innbetalinger", "Fetch payments"),
    "fetch_all_button": ("Hent for alle fakturaklienter", "Fetch for all invoice clients"),
    "fetch_started": ("Henting {id} startet av {user} {when}", "Fetch {id} started by {user} {when}"),
    "fetch_company": ("{client} (Visma-firma {no}): {published} innbetalinger hentet, {bad} rader med feil",
                      "{client} (Visma company {no}): {published} payments fetched, {bad} rows with errors"),
    "fetch_company_failed": ("{client} (Visma-firma {no}): mislyktes: {error}",
                             "{client} (Visma company {no}): failed: {error}"),
    "progress": ("Fremdrift", "Progress"),
    "progress_line": ("{applied} av {published} registrert i PowerOffice og merket i Visma, {dead} feilet, "
                      "{pending} venter",
                      "{applied} of {published} registered in PowerOffice and marked in Visma, {dead} failed, "
                      "{pending} waiting"),
    "fetch_nothing": ("Ingen nye innbetalinger å hente.", "No new payments to fetch."),
    "fetch_done": ("Ferdig: {applied} av {published} innbetalinger er registrert i PowerOffice.",
                   "Done: {applied} of {published} payments are registered in PowerOffice."),
    "fetch_done_failed": ("{dead} kunne ikke registreres; se feilede overføringer.",
                          "{dead} could not be registered; see failed transfers."),
    "fetch_check_error": ("Fremdriften kunne ikke sjekkes akkurat nå: {error}", "Progress could not be checked just now: {error}"),
    "fetch_again": ("Hent igjen", "Fetch again"),
    "no_fetch_permission": ("Du har ikke tilgang til å hente innbetalinger.", "You may not fetch payments."),
    # dead letters
    "dl_intro": ("Innbetalinger og sperringer som ikke kunne overføres, med årsaken. Rett feilen (for eksempel "
                 "låsedatoen i PowerOffice), og send dem så på nytt.",
                 "Payments and blocks that could not be transferred, with the reason. Fix the cause (the lock "
                 "date in PowerOffice, say), then send them again."),
    "dl_open_only": ("Bare åpne", "Open only"),
    "dl_filter": ("Filtrer", "Filter"),
    "dl_state": ("Status", "State"),
    "dl_id": ("Id", "Id"),
    "dl_when": ("Tidspunkt", "When"),
    "dl_reason": ("Årsak", "Reason"),
    "dl_company": ("Fakturaklient", "Invoice client"),
    "dl_key": ("Visma-rad", "Visma row"),
    "dl_open": ("Åpen", "Open"),
    "dl_redriven": ("Sendt på nytt av {user} {when}", "Sent again by {user} {when}"),
    "dl_none": ("Ingen feilede overføringer.", "No failed transfers."),
    "dl_select": ("Velg {id}", "Select {id}"),
    "dl_redrive_selected": ("Send valgte på nytt", "Send selected again"),
    "dl_redrive": ("Send på nytt", "Send again"),
    "dl_what_to_do": ("Hva gjør jeg?", "What do I do?"),
    "dl_technical": ("Teknisk feilmelding", "Technical error message"),
    "dl_original": ("Den opprinnelige hendelsen", "The original event"),
    "dl_attempts": ("Forsøk", "Attempts"),
    "dl_first_failed": ("Først feilet", "First failed"),
    "dl_stage": ("Ledd", "Stage"),
    "dl_stage_consumer": ("Registrering i PowerOffice", "Registration in PowerOffice"),
    "dl_stage_producer": ("Lesing fra Visma", "Reading from Visma"),
    "dl_not_redrivable": ("Kan ikke sendes på nytt: {why}", "Cannot be sent again: {why}"),
    "dl_redriven_n": ("{n} sendt på nytt.", "{n} sent again."),
    "dl_skipped_n": ("{n} hoppet over: {why}", "{n} skipped: {why}"),
    "dl_choose": ("Velg minst én.", "Choose at least one."),
    # settings
    "settings_intro": ("Integrasjonsinnstillingene vb2po kjører med. Endringer kontrolleres mot Visma Business og "
                       "PowerOffice før de lagres, og gjelder i alle prosesser i løpet av noen sekunder. "
                       "Forbindelser og hemmeligheter endres bare i innstillingsfilen.",
                       "The integration settings vb2po runs with. Changes are checked against Visma Business and "
                       "PowerOffice before they are saved, and reach every process within seconds. Connections "
                       "and secrets change only in the settings file."),
    "settings_version": ("Versjon {version}, sist endret av {user} {when}.", "Version {version}, last changed by {user} {when}."),
    "settings_file_only": ("Ingen endringer er gjort her; alt er som i innstillingsfilen.",
                           "No changes were made here; everything is as in the settings file."),
    "setting": ("Innstilling", "Setting"),
    "value": ("Verdi", "Value"),
    "file_value": ("I filen: {value}", "In the file: {value}"),
    "changed_here": ("endret her", "changed here"),
    "check_change": ("Kontroller endringen", "Check the change"),
    "save_change": ("Lagre endringen", "Save the change"),
    "cancel": ("Avbryt", "Cancel"),
    "change_preview": ("Endringen er kontrollert, men ikke lagret", "The change is checked, not saved"),
    "change_saved": ("Endringen er lagret (versjon {version}).", "The change is saved (version {version})."),
    "change_none": ("Ingen endring: verdiene er de samme som nå.", "No change: the values are the ones in use."),
    "change_refused": ("Endringen ble ikke gjort: {error}", "The change was not made: {error}"),
    "checks": ("Kontroller", "Checks"),
    "notes": ("Merk", "Note"),
    "run_checks": ("Test alle forbindelser", "Test every connection"),
    "checks_ok": ("Alle kontroller er i orden.", "All checks passed."),
    "checks_failed": ("{n} kontroller feilet.", "{n} checks failed."),
    "all_settings": ("Alle innstillinger (hemmeligheter skjult)", "All settings (secrets hidden)"),
    "level_ok": ("OK", "OK"),
    "level_warn": ("Advarsel", "Warning"),
    "level_fail": ("Feil", "Failed"),
    "fix": ("Slik retter du det", "How to fix it"),
    "invalid_value": ("Ugyldig verdi for {path}: {value}", "Invalid value for {path}: {value}"),
    "s_integration_enabled": ("Integrasjonen er slått på (Visma Business leses)", "The integration is on (Visma Business is read)"),
    "s_lookback_date": ("Innbetalinger med bilagsdato før denne datoen overføres ikke",
                        "Payments with a voucher date before this date are not transferred"),
    "s_credit_block_sync": ("Kunder med kredittsperre i Visma sperres for timeføring i PowerOffice",
                            "Customers with a credit block in Visma are blocked for time registration in PowerOffice"),
    "s_marker.field": ("Feltet i Visma (CustTr) som merker en innbetaling som overført",
                       "The Visma field (CustTr) that marks a payment as transferred"),
    "s_marker.value": ("Verdien som skrives i det feltet", "The value written into that field"),
    "s_payment_rule.voucher_types": ("Bilagsartene (VoTp) som er innbetalinger, skilt med komma",
                                     "The voucher types (VoTp) that are payments, separated by commas"),
    "s_default_company_no": ("Visma-firmaet til fakturaklienter som ikke nevner noe",
                             "The Visma company of invoice clients that name none"),
    "s_bank_account": ("{client}: bankkonto (hovedbokskonto) innbetalingene føres mot",
                       "{client}: bank account (general ledger) the payments are debited to"),
    "s_company_no": ("{client}: Visma-firma (tomt: standardfirmaet)", "{client}: Visma company (empty: the default)"),
    # audit
    "audit_intro": ("Hvem gjorde hva, når, og med hvilket utfall. Nyeste først.",
                    "Who did what, when, and with what outcome. Newest first."),
    "audit_user": ("Bruker", "User"),
    "audit_action": ("Handling", "Action"),
    "audit_target": ("Gjelder", "Concerns"),
    "audit_outcome": ("Utfall", "Outcome"),
    "audit_detail": ("Detaljer", "Detail"),
    "audit_from": ("Fra", "From"),
    "audit_none": ("Ingen oppføringer.", "No entries."),
    "audit_shown": ("Viser de {n} nyeste.", "Showing the newest {n}."),
    # reconcile
    "reconcile_intro": ("Sammenligner utestående per faktura i Visma Business med saldoen i PowerOffice.",
                        "Compares what is outstanding per invoice in Visma Business with the balance in PowerOffice."),
    "reconcile_start": ("Start avstemming", "Start reconciliation"),
    "reconcile_recent": ("Siste avstemminger", "Recent reconciliations"),
    "reconcile_none": ("Ingen avstemming er kjørt siden oppstart.", "No reconciliation has run since start."),
    "reconcile_started": ("Startet", "Started"),
    "reconcile_by": ("Av", "By"),
    "reconcile_clients": ("Fakturaklienter", "Invoice clients"),
    "reconcile_state": ("Status", "State"),
    "reconcile_running": ("Pågår", "Running"),
    "reconcile_finished": ("Ferdig", "Finished"),
    "reconcile_failed": ("Mislyktes: {error}", "Failed: {error}"),
    "reconcile_summary": ("{client} (Visma-firma {no}): {compared} fakturaer sammenlignet, {matching} like, "
                          "{open} åpne avvik",
                          "{client} (Visma company {no}): {compared} invoices compared, {matching} match, "
                          "{open} open differences"),
    "reconcile_lookback": ("{n} avviker bare med innbetalinger før tilbakedatoen (ventet).",
                           "{n} differ only by payments before the lookback date (expected)."),
    "reconcile_csv": ("Last ned rapporten (CSV)", "Download the report (CSV)"),
    "reconcile_no_diff": ("Ingen avvik.", "No differences."),
    "r_invoice": ("Faktura", "Invoice"),
    "r_customer": ("Kunde", "Customer"),
    "r_kind": ("Avvik", "Difference"),
    "r_visma": ("Utestående i Visma", "Outstanding in Visma"),
    "r_poweroffice": ("Saldo i PowerOffice", "Balance in PowerOffice"),
    "r_difference": ("Forskjell", "Difference"),
    "r_unmarked": ("Ikke overført ennå", "Not transferred yet"),
    "k_payments_missing_in_poweroffice": ("Innbetaling mangler i PowerOffice", "Payment missing in PowerOffice"),
    "k_payments_missing_in_visma": ("Innbetaling mangler i Visma", "Payment missing in Visma"),
    "k_invoice_unknown_in_poweroffice": ("Fakturaen finnes ikke i PowerOffice", "Invoice unknown to PowerOffice"),
    "k_invoice_unknown_in_visma": ("Fakturaen finnes ikke i Visma", "Invoice unknown to Visma"),
    "k_excluded_by_lookback": ("Bare innbetalinger før tilbakedatoen", "Only payments before the lookback date"),
}

# Dead-letter reasons in plain words: (what happened, what to do), per language.
REASONS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "invoice_unknown": (
        ("PowerOffice kjenner ikke fakturaen innbetalingen gjelder.",
         "Sjekk fakturanummeret på innbetalingen i Visma, eller at fakturaen finnes i PowerOffice. Send på nytt etterpå."),
        ("PowerOffice does not know the invoice the payment is for.",
         "Check the payment's invoice number in Visma, or that the invoice exists in PowerOffice. Then send it again.")),
    "invoice_of_another_customer": (
        ("Fakturaen tilhører en annen kunde i PowerOffice enn innbetalingen i Visma.",
         "Rett kunde- eller fakturanummeret på raden i Visma; den endrede raden hentes av seg selv."),
        ("The invoice belongs to another customer in PowerOffice than the payment in Visma.",
         "Correct the customer or invoice number on the row in Visma; the changed row is fetched by itself.")),
    "invoice_reversed": (
        ("Fakturaen er reversert i PowerOffice, så ingen innbetaling kan føres mot den.",
         "Finn ut hvilken faktura kunden betalte, rett raden i Visma, eller før innbetalingen for hånd."),
        ("The invoice is reversed in PowerOffice, so no payment can be posted against it.",
         "Find out which invoice the customer paid, correct the row in Visma, or post the payment by hand.")),
    "currency_mismatch": (
        ("Innbetalingen er i en annen valuta enn fakturaen i PowerOffice.",
         "Sjekk valutaen på raden i Visma og på fakturaen i PowerOffice; før innbetalingen for hånd om begge er riktige."),
        ("The payment is in another currency than the invoice in PowerOffice.",
         "Check the currency of the row in Visma and of the invoice in PowerOffice; post it by hand if both are right.")),
    "not_in_visma": (
        ("Visma har ingen slik rad; ingenting ble ført.",
         "Hendelsen kom ikke fra en rad i Visma (en gammel avspilling, eller noen som skrev til emnet): ikke send den på nytt."),
        ("Visma holds no such row; nothing was posted.",
         "The event did not come from a row in Visma (an old replay, or someone writing to the topic): do not send it again.")),
    "differs_from_visma": (
        ("Hendelsen sier noe annet enn raden i Visma (kunde, faktura, beløp eller valuta); ingenting ble ført.",
         "Ikke send hendelsen på nytt; den riktige raden i Visma hentes av seg selv."),
        ("The event says something else than the row in Visma (customer, invoice, amount or currency); nothing was posted.",
         "Do not send the event again; the right row in Visma is fetched by itself.")),
    "reversal_without_payment": (
        ("En tilbakeføring i Visma, men innbetalingen den gjelder finnes ikke.", "Sjekk raden i Visma; før det for hånd om det trengs."),
        ("A reversal in Visma, but the payment it undoes does not exist.", "Check the row in Visma; post it by hand if needed.")),
    "crashed_consumer": (
        ("vb2po stoppet flere ganger mens denne ble behandlet, og har lagt den til side.",
         "Be en utvikler se på den tekniske feilmeldingen og loggen før den sendes på nytt."),
        ("vb2po stopped several times while processing this, and set it aside.",
         "Ask a developer to look at the technical message and the log before sending it again.")),
    "invalid_event": (
        ("Hendelsen bryter reglene for innholdet (grenser, konvolutt, versjon).", "Be en utvikler se på den; den kan ikke sendes på nytt som den er."),
        ("The event breaks the rules for its content (bounds, envelope, version).", "Ask a developer to look at it; it cannot be sent again as it is.")),
    "invalid_date": (
        ("En dato på raden i Visma er ingen gyldig dato.", "Rett datoen i Visma; den endrede raden hentes av seg selv."),
        ("A date on the Visma row is no valid date.", "Correct the date in Visma; the changed row is fetched by itself.")),
    "unknown_currency": (
        ("Valutanummeret på raden i Visma er ukjent.", "Legg valutaen inn under currency.codes i innstillingene, eller rett raden."),
        ("The currency number on the Visma row is unknown.", "Add the currency under currency.codes in the settings, or correct the row.")),
    "lock_date": (
        ("Bilagsdatoen er på eller før låsedatoen i PowerOffice, så innbetalingen kan ikke føres.",
         "Flytt låsedatoen i PowerOffice (eller før innbetalingen manuelt), og send på nytt."),
        ("The voucher date is on or before the lock date in PowerOffice, so the payment cannot be posted.",
         "Move the lock date in PowerOffice (or post the payment by hand), then send it again.")),
    "validation": (
        ("PowerOffice avviste innbetalingen som ugyldig.", "Les den tekniske feilmeldingen, rett det i Visma eller PowerOffice, og send på nytt."),
        ("PowerOffice refused the payment as invalid.", "Read the technical message, fix it in Visma or PowerOffice, then send it again.")),
    "invalid_invoice_no": (
        ("Fakturanummeret i Visma er ikke et gyldig PowerOffice-fakturanummer.", "Rett fakturanummeret på raden i Visma; den endrede raden hentes av seg selv."),
        ("The invoice number in Visma is not a valid PowerOffice invoice number.", "Correct the invoice number on the row in Visma; the changed row is fetched by itself.")),
    "customer_not_found": (
        ("PowerOffice kjenner ikke kunden.", "Opprett kunden i PowerOffice med samme kundenummer, og send på nytt."),
        ("PowerOffice does not know the customer.", "Create the customer in PowerOffice with the same customer number, then send it again.")),
    "account_not_found": (
        ("Bankkontoen finnes ikke i PowerOffice.", "Rett bankkontoen under Innstillinger, og send på nytt."),
        ("The bank account does not exist in PowerOffice.", "Correct the bank account under Settings, then send it again.")),
    "unknown_invoice_client": (
        ("Ingen fakturaklient er satt opp for Visma-firmaet.", "Knytt en fakturaklient til firmaet i innstillingene, og send på nytt."),
        ("No invoice client is set up for the Visma company.", "Map an invoice client to the company in the settings, then send it again.")),
    "undecodable": (
        ("Hendelsen kunne ikke leses.", "Be en utvikler se på den; den kan ikke sendes på nytt som den er."),
        ("The event could not be read.", "Ask a developer to look at it; it cannot be sent again as it is.")),
    "missing_invoice_no": (
        ("Innbetalingen i Visma mangler fakturanummer.", "Før fakturanummeret på raden i Visma; den endrede raden hentes av seg selv."),
        ("The payment in Visma has no invoice number.", "Enter the invoice number on the row in Visma; the changed row is fetched by itself.")),
    "missing_customer": (
        ("Innbetalingen i Visma mangler kundenummer.", "Før kundenummeret på raden i Visma; den endrede raden hentes av seg selv."),
        ("The payment in Visma has no customer number.", "Enter the customer number on the row in Visma; the changed row is fetched by itself.")),
    "unreadable_amount": (
        ("Beløpet på raden i Visma kunne ikke leses.", "Rett beløpet i Visma; den endrede raden hentes av seg selv."),
        ("The amount on the Visma row could not be read.", "Correct the amount in Visma; the changed row is fetched by itself.")),
    "unauthorized": (
        ("PowerOffice godtok ikke nøklene til vb2po.", "Sjekk klientnøkkelen og applikasjonsnøkkelen i innstillingsfilen, og send på nytt."),
        ("PowerOffice did not accept vb2po's keys.", "Check the client key and application key in the settings file, then send it again.")),
    "forbidden": (
        ("PowerOffice nektet vb2po tilgang.", "Gi integrasjonen tilgang i PowerOffice, og send på nytt."),
        ("PowerOffice refused vb2po access.", "Grant the integration access in PowerOffice, then send it again.")),
}
UNKNOWN_REASON = (("Overføringen mislyktes ({reason}).", "Les den tekniske feilmeldingen, rett årsaken og send på nytt."),
                  ("The transfer failed ({reason}).", "Read the technical message, fix the cause and send it again."))


def negotiate(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The language of a request: the switch, the remembered choice, the browser's, the default."""
    for explicit in (query, cookie):
        if explicit in LANGUAGES:
            return explicit
    ranked = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        language = _ALIASES.get(tag.strip().lower().split("-")[0])
        if language and quality > 0:
            ranked.append((-quality, i, language))
    return sorted(ranked)[0][2] if ranked else DEFAULT


class Translator:
    def __init__(self, language: str):
        self.language = language if language in LANGUAGES else DEFAULT
        self._index = LANGUAGES.index(self.language)

    def __call__(self, key: str, **values: object) -> str:
        pair = MESSAGES.get(key)
        text = pair[self._index] if pair else key
        return text.format(**values) if values else text

    def reason(self, reason: str) -> tuple[str, str]:
        """(what happened, what to do) for a dead letter's reason, in plain words."""
        found = REASONS.get(reason)
        if found is None:
            what, todo = UNKNOWN_REASON[self._index]
            return what.format(reason=reason), todo
        return found[self._index]
