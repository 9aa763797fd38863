"""Forms of the backups app, shared by the pages, the admin and the commands (one validation
path). Every error is put on the field to fix, and nothing is saved unless all is valid.

Saving a remote tests its folder first (a real write-fsync-read-delete through the engine's
adapter, with a time limit), like the pool form tests its connection.
"""

from __future__ import annotations

from django import forms
from django.core.validators import validate_email
from django.forms import BaseInlineFormSet, inlineformset_factory

from backups import cron
from backups.choices import ReportWhen, VmSelection
from backups.models import BackupJob, Remote, Schedule
from backups.services import remotes as remote_checks
from pools.models import SR, VM, Pool


def _unique_name(model, name: str, instance, *, what: str, **scope) -> str:
    name = name.strip()
    if not name:
        raise forms.ValidationError(f"enter a name for the {what}")
    others = model.objects.filter(name__iexact=name, **scope)
    if instance.pk:
        others = others.exclude(pk=instance.pk)
    if others.exists():
        raise forms.ValidationError(f"a {what} named {name!r} already exists")
    return name


class RemoteForm(forms.ModelForm):
    """Add or edit a remote; saving write-tests its folder unless asked not to."""

    test_folder = forms.BooleanField(
        required=False,
        initial=True,
        label="Test the folder before saving",
        help_text="Creates the folder if needed, then writes, syncs, reads and deletes a file.",
    )

    class Meta:
        model = Remote
        fields = ["name", "path", "enabled"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.check_result: remote_checks.CheckResult | None = None

    def clean_name(self) -> str:
        return _unique_name(Remote, self.cleaned_data["name"], self.instance, what="remote")

    def clean_path(self) -> str:
        path = self.cleaned_data["path"].strip()
        probe = Remote(path=path)
        try:
            probe.clean()
        except forms.ValidationError as error:
            raise forms.ValidationError(error.message_dict["path"]) from None
        others = Remote.objects.filter(path=probe.path)
        if self.instance.pk:
            others = others.exclude(pk=self.instance.pk)
        other = others.first()
        if other is not None:
            raise forms.ValidationError(f"remote {other.name!r} already uses {probe.path}")
        return probe.path

    def clean(self) -> dict:
        data = super().clean()
        if self.errors or not data.get("test_folder", True):
            return data
        candidate = Remote(name=data["name"], path=data["path"], uuid=self.instance.uuid)
        self.check_result = remote_checks.probe_with_timeout(candidate)
        if not self.check_result.ok:
            self.add_error("path", self.check_result.message)
        return data

    def save(self, commit: bool = True) -> Remote:
        remote = super().save(commit=commit)
        if commit and self.check_result is not None:
            remote_checks.record(remote, self.check_result)
        return remote


class VmUuidsField(forms.MultipleChoiceField):
    """VMs by uuid, among the guests in the pools' cache (live ones first in the list)."""

    default_error_messages = {
        "invalid_choice": "no VM with uuid %(value)s in the pools' cache "
        "(is its pool added and connected?)",
    }

    def __init__(self, **kwargs) -> None:
        super().__init__(choices=self._choices, **kwargs)

    @staticmethod
    def _choices() -> list[tuple[str, str]]:
        rows = (
            VM.objects.guests()
            .select_related("pool")
            .order_by("pool__name", "name_label")
            .only("uuid", "name_label", "pool__name")
        )
        return [(vm.uuid, f"{vm.pool.name} / {vm.name_label} ({vm.uuid[:8]})") for vm in rows]


class TagsField(forms.CharField):
    """Comma-separated tags ↔ a list."""

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(value)
        return value

    def to_python(self, value) -> list[str]:
        items = value if isinstance(value, list | tuple) else (value or "").split(",")
        return sorted({item.strip() for item in items if item.strip()})


class EmailsField(forms.CharField):
    """E-mail addresses separated by commas or spaces ↔ a list; each one checked."""

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(value)
        return value

    def to_python(self, value) -> list[str]:
        items = value if isinstance(value, list | tuple) else (value or "").replace(",", " ")
        if isinstance(items, str):
            items = items.split()
        return list(dict.fromkeys(item.strip() for item in items if item.strip()))

    def validate(self, value) -> None:
        super().validate(value)
        for address in value:
            try:
                validate_email(address)
            except forms.ValidationError:
                raise forms.ValidationError(f"{address!r} is not an e-mail address") from None


class BackupJobForm(forms.ModelForm):
    """Add or edit a job (its schedules come in :data:`ScheduleFormSet`)."""

    vm_uuids = VmUuidsField(
        label="VMs",
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text="When the job backs up chosen VMs.",
    )
    vm_tags = TagsField(
        label="VM tags",
        required=False,
        help_text="Rule: comma-separated; VMs with any of them (empty: every VM of the pool).",
    )
    pool = forms.ModelChoiceField(queryset=Pool.objects.order_by("name"), required=False)
    remotes = forms.ModelMultipleChoiceField(
        queryset=Remote.objects.order_by("name"),
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "required": "choose at least one remote",
            "invalid_choice": "no remote %(value)s",
        },
    )
    report_when = forms.ChoiceField(
        label="Mail a report",
        choices=ReportWhen.choices,
        required=False,
        initial=ReportWhen.NEVER,
        help_text="Per VM what happened, per disk full or delta and why, sizes and speeds.",
    )
    report_to = EmailsField(
        label="Report recipients",
        required=False,
        help_text="Addresses separated by commas (sent through the server of EMAIL_HOST).",
    )

    class Meta:
        model = BackupJob
        fields = [
            "name",
            "mode",
            "vm_selection",
            "vm_uuids",
            "pool",
            "vm_tags",
            "vm_power_state",
            "remotes",
            "full_interval",
            "max_chain_length",
            "concurrency",
            "vm_timeout",
            "report_when",
            "report_to",
        ]
        widgets = {"vm_selection": forms.RadioSelect, "mode": forms.RadioSelect}

    def clean_name(self) -> str:
        return _unique_name(BackupJob, self.cleaned_data["name"], self.instance, what="job")

    def clean_report_when(self) -> str:
        return self.cleaned_data["report_when"] or ReportWhen.NEVER

    def clean(self) -> dict:
        data = super().clean()
        selection = data.get("vm_selection")
        if selection == VmSelection.EXPLICIT:
            data["pool"], data["vm_tags"], data["vm_power_state"] = None, [], ""
        elif selection == VmSelection.RULE:
            data["vm_uuids"] = []
        return data


class SrUuidField(forms.ChoiceField):
    """An SR by uuid, among the SRs in the pools' cache that hold disks (not ISO libraries)."""

    default_error_messages = {
        "invalid_choice": "no SR with uuid %(value)s that can hold disks in the pools' cache "
        "(is its pool added and connected?)",
    }

    def __init__(self, **kwargs) -> None:
        super().__init__(choices=self._choices, **kwargs)

    @staticmethod
    def _choices() -> list[tuple[str, str]]:
        rows = (
            SR.objects.exclude(content_type="iso")
            .select_related("pool")
            .order_by("pool__name", "name_label")
            .only("uuid", "name_label", "pool__name")
        )
        return [("", "—")] + [(sr.uuid, f"{sr.pool.name} / {sr.name_label}") for sr in rows]


class ScheduleForm(forms.ModelForm):
    """One schedule: cron (validated, described), time zone, retention (the newest N, then
    long-term buckets), force full, and what is proven after each run (verification, restore
    test on an SR)."""

    health_check_sr = SrUuidField(
        label="Restore test SR", required=False, help_text="Where the restore test creates its VM."
    )

    class Meta:
        model = Schedule
        fields = [
            "name",
            "cron",
            "timezone",
            "enabled",
            "retention",
            "retention_daily",
            "retention_weekly",
            "retention_monthly",
            "retention_yearly",
            "snapshot_retention",
            "force_full",
            "verify",
            "health_check",
            "health_check_sr",
            "health_check_timeout",
        ]

    LONG_TERM = ("retention_daily", "retention_weekly", "retention_monthly", "retention_yearly")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name, period in zip(self.LONG_TERM, ("days", "weeks", "months", "years"), strict=True):
            field = self.fields[name]
            field.required = False  # empty: none kept
            field.widget.attrs.update({"placeholder": period, "title": f"{period} kept", "size": 3})
        # Left empty (a script that knows nothing of restore tests): the model's default.
        self.fields["health_check_timeout"].required = False

    @property
    def long_term_fields(self) -> list:
        return [self[name] for name in self.LONG_TERM]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("enter a name for the schedule, e.g. nightly")
        return name

    def _clean_long_term(self, name: str) -> int:
        value = self.cleaned_data.get(name)
        return 0 if value is None else value

    def clean_retention_daily(self) -> int:
        return self._clean_long_term("retention_daily")

    def clean_retention_weekly(self) -> int:
        return self._clean_long_term("retention_weekly")

    def clean_retention_monthly(self) -> int:
        return self._clean_long_term("retention_monthly")

    def clean_retention_yearly(self) -> int:
        return self._clean_long_term("retention_yearly")

    def clean_health_check_timeout(self) -> int:
        value = self.cleaned_data.get("health_check_timeout")
        if value is None:
            return Schedule._meta.get_field("health_check_timeout").default
        return value

    def clean_cron(self) -> str:
        try:
            return cron.normalise_cron(self.cleaned_data["cron"])
        except cron.CronError as error:
            raise forms.ValidationError(str(error)) from None

    def clean_timezone(self) -> str:
        try:
            return cron.normalise_timezone(self.cleaned_data["timezone"])
        except cron.CronError as error:
            raise forms.ValidationError(str(error)) from None

    def clean(self) -> dict:
        data = super().clean()
        job = self.instance.job if self.instance.job_id else None
        if job is not None and data.get("name") and "name" not in self.errors:
            others = Schedule.objects.filter(job=job, name__iexact=data["name"])
            if self.instance.pk:
                others = others.exclude(pk=self.instance.pk)
            if others.exists():
                self.add_error("name", f"job {job.name} already has a schedule {data['name']!r}")
        return data

    @property
    def description(self) -> str:
        value = self["cron"].value()
        if not value:
            return ""
        try:
            return cron.describe(cron.normalise_cron(value))
        except cron.CronError:
            return ""


class BaseScheduleFormSet(BaseInlineFormSet):
    """Schedule names are unique within a job, whatever their case."""

    def clean(self) -> None:
        super().clean()
        seen: set[str] = set()
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or form.cleaned_data.get("DELETE"):
                continue
            name = (form.cleaned_data.get("name") or "").lower()
            if not name:
                continue
            if name in seen:
                form.add_error("name", f"two schedules are named {form.cleaned_data['name']!r}")
            seen.add(name)


ScheduleFormSet = inlineformset_factory(
    BackupJob,
    Schedule,
    form=ScheduleForm,
    formset=BaseScheduleFormSet,
    extra=1,
    can_delete=True,
)
