"""The invitation mail. Its link holds the key: mailed and shown once, never logged or stored."""

from __future__ import annotations

import logging
import smtplib
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.views.decorators.debug import sensitive_variables

if TYPE_CHECKING:
    from accounts.models import Invitation

logger = logging.getLogger(__name__)


@sensitive_variables("link", "body")
def send_invitation(invitation: Invitation, link: str) -> bool:
    """Mail the link; False (logged without the link) if the mail server refused or is down."""
    inviter = invitation.invited_by.get_username() if invitation.invited_by else "An owner"
    context = {
        "invitation": invitation,
        "link": link,
        "inviter": inviter,
        "days": settings.COFFER_INVITATION_DAYS,
    }
    body = render_to_string("accounts/invitation_mail.txt", context)
    try:
        send_mail(
            f"[Coffer] {inviter} invited you to {invitation.workspace.name}",
            body,
            None,  # DEFAULT_FROM_EMAIL
            [invitation.email],
            fail_silently=False,
        )
    except (OSError, smtplib.SMTPException) as error:
        logger.warning(
            "Could not mail invitation %s for workspace %s: %s",
            invitation.pk,
            invitation.workspace.slug,
            type(error).__name__,
        )
        return False
    return True
