"""The Webhooks page (owners): list, create (the secret shown once), edit, rotate the signing
secret (the new one shown once), delete, each
webhook's delivery log with Redeliver; and the Reminders page (each member's own choice, and
the owners' switch for the workspace). Plain pages and htmx fragments, never cached."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from lib.htmx import modal_success, render_modal
from lib.views import signed_in_view
from notifications.delivery import redeliver as redeliver_event
from notifications.events import ping
from notifications.forms import ReminderPreferenceForm, WebhookForm, WorkspaceRemindersForm
from notifications.models import Webhook, WebhookAttempt, WebhookDelivery
from notifications.reminders import thresholds
from workspaces.access import get_object_in, get_workspace_for
from workspaces.http import AuthenticatedHttpRequest
from workspaces.models import Role, Workspace
from workspaces.reauth import recent_auth_required

CHANGED = "webhooksChanged"
DELIVERIES_SHOWN = 50


def get_webhook_for(workspace: Workspace, pk: uuid.UUID) -> Webhook:
    """A webhook of `workspace` (404 otherwise); fetch the workspace with get_workspace_for."""
    return get_object_in(workspace, Webhook, pk)


def list_url(workspace: Workspace) -> str:
    return reverse("notifications:webhooks", args=[workspace.slug])


@signed_in_view("GET", fragment=True)
def webhook_list(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    context = {
        "nav": "webhooks",
        "webhooks": list(Webhook.objects.for_workspace(workspace)),
        "table_url": list_url(workspace),
    }
    fragment = request.htmx and not request.htmx.history_restore_request
    template = "notifications/webhooks.html#table" if fragment else "notifications/webhooks.html"
    return render(request, template, context)


@signed_in_view("GET", "POST", fragment=True)
@recent_auth_required
def webhook_create(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    form = WebhookForm(request.POST if request.method == "POST" else None, workspace=workspace)
    if request.method == "POST" and form.is_valid():
        webhook, secret = form.save_new(by=request.user)
        ping(webhook, actor=request.user.get_username())  # the receiver can be checked at once
        context = {
            "nav": "webhooks",
            "webhook": webhook,
            "secret": secret,
            "done_url": list_url(workspace),
        }
        return render_modal(request, "notifications/webhook_created.html", context)
    return render_modal(
        request,
        "notifications/webhook_form.html",
        {
            "nav": "webhooks",
            "form": form,
            "title": "Add webhook",
            "submit_label": "Add webhook",
            "cancel_url": list_url(workspace),
        },
    )


@signed_in_view("GET", "POST", fragment=True)
@recent_auth_required
def webhook_edit(request: AuthenticatedHttpRequest, slug: str, pk: uuid.UUID) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    webhook = get_webhook_for(workspace, pk)
    form = WebhookForm(
        request.POST if request.method == "POST" else None, instance=webhook, workspace=workspace
    )
    if request.method == "POST" and form.is_valid():
        form.save_changes()
        return modal_success(
            request, message="Webhook saved.", event=CHANGED, redirect_to=list_url(workspace)
        )
    return render_modal(
        request,
        "notifications/webhook_form.html",
        {
            "nav": "webhooks",
            "form": form,
            "title": "Edit webhook",
            "submit_label": "Save webhook",
            "cancel_url": list_url(workspace),
        },
    )


@signed_in_view("GET", "POST", fragment=True)
@recent_auth_required
def webhook_rotate(request: AuthenticatedHttpRequest, slug: str, pk: uuid.UUID) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    webhook = get_webhook_for(workspace, pk)
    if request.method == "POST":
        context = {
            "nav": "webhooks",
            "webhook": webhook,
            "secret": webhook.rotate_secret(),
            "heading": "New signing secret",
            "done_url": list_url(workspace),
        }
        return render_modal(request, "notifications/webhook_created.html", context)
    return render_modal(
        request,
        "modal_form.html",
        {
            "nav": "webhooks",
            "title": "Rotate the signing secret?",
            "intro": f"A new secret signs every delivery to {webhook.url} from now on, retries "
            "of earlier events included. The current secret stops working at once: give the "
            "receiver the new one right after.",
            "submit_label": "Rotate secret",
            "cancel_url": list_url(workspace),
        },
    )


@signed_in_view("GET", "POST", fragment=True)
def webhook_delete(request: AuthenticatedHttpRequest, slug: str, pk: uuid.UUID) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    webhook = get_webhook_for(workspace, pk)
    if request.method == "POST":
        webhook.delete()
        return modal_success(
            request,
            message=f"Webhook {webhook.url} deleted with its delivery log.",
            event=CHANGED,
            redirect_to=list_url(workspace),
        )
    return render_modal(
        request,
        "modal_form.html",
        {
            "nav": "webhooks",
            "title": "Delete this webhook?",
            "intro": f"{webhook.url} will be sent nothing more, and its delivery log is deleted.",
            "submit_label": "Delete webhook",
            "submit_class": "btn-danger",
            "cancel_url": list_url(workspace),
        },
    )


@signed_in_view("GET")
def webhook_deliveries(request: AuthenticatedHttpRequest, slug: str, pk: uuid.UUID) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    webhook = get_webhook_for(workspace, pk)
    deliveries = (
        WebhookDelivery.objects.filter(webhook=webhook)
        .defer("body")
        .prefetch_related(
            Prefetch("attempts", WebhookAttempt.objects.order_by("-attempted_at", "-id"))
        )[:DELIVERIES_SHOWN]
    )
    context = {"nav": "webhooks", "webhook": webhook, "deliveries": deliveries}
    return render(request, "notifications/deliveries.html", context)


@signed_in_view("POST")
def webhook_test(request: AuthenticatedHttpRequest, slug: str, pk: uuid.UUID) -> HttpResponse:
    """Send test event: a ping to this webhook, then its delivery log, where it shows."""
    workspace = get_workspace_for(request, slug, Role.OWNER)
    webhook = get_webhook_for(workspace, pk)
    if not webhook.active:
        messages.error(request, "This webhook is paused: resume it (Edit, Active) to test it.")
    else:
        ping(webhook, actor=request.user.get_username())
        messages.success(request, f"Test event sent to {webhook.url}: its delivery is below.")
    return redirect("notifications:deliveries", slug=workspace.slug, pk=webhook.pk)


@signed_in_view("POST")
def redeliver(
    request: AuthenticatedHttpRequest, slug: str, pk: uuid.UUID, delivery: uuid.UUID
) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    webhook = get_webhook_for(workspace, pk)
    original = get_object_or_404(WebhookDelivery, webhook=webhook, pk=delivery)
    log_url = reverse("notifications:deliveries", args=[workspace.slug, webhook.pk])
    if not webhook.active:
        messages.error(request, "This webhook is paused: resume it (Edit, Active) to redeliver.")
    else:
        redeliver_event(original)
        messages.success(request, f"Redelivery of {original.event_type} queued.")
    return redirect(log_url)


@signed_in_view("GET", "POST")
def reminders(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(
        request, slug, Role.EDITOR if request.method == "POST" else Role.VIEWER
    )
    membership = request.membership
    form = ReminderPreferenceForm(
        request.POST if request.method == "POST" else None,
        initial={"expiry_reminders": membership.expiry_reminders},
    )
    if request.method == "POST" and form.is_valid():
        membership.expiry_reminders = form.cleaned_data["expiry_reminders"]
        membership.save(update_fields=["expiry_reminders"])
        messages.success(
            request,
            "You will get expiry reminders for this workspace."
            if membership.expiry_reminders
            else "You will get no more expiry reminders for this workspace.",
        )
        return redirect("notifications:reminders", slug=workspace.slug)
    context = {
        "nav": "reminders",
        "form": form,
        "workspace_form": WorkspaceRemindersForm(
            initial={"reminders_enabled": workspace.reminders_enabled}
        ),
        "is_recipient_role": membership.can(Role.EDITOR),
        "is_owner": membership.can(Role.OWNER),
        "thresholds": thresholds(),
    }
    return render(request, "notifications/reminders.html", context)


@signed_in_view("POST")
def workspace_reminders(request: AuthenticatedHttpRequest, slug: str) -> HttpResponse:
    workspace = get_workspace_for(request, slug, Role.OWNER)
    form = WorkspaceRemindersForm(request.POST)
    form.is_valid()  # a lone checkbox: absent means off, never an error
    workspace.reminders_enabled = bool(form.cleaned_data.get("reminders_enabled"))
    workspace.save(update_fields=["reminders_enabled"])
    state = "on" if workspace.reminders_enabled else "off"
    messages.success(request, f"Expiry reminders are {state} for {workspace.name}.")
    return redirect("notifications:reminders", slug=workspace.slug)
