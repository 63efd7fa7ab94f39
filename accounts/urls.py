from __future__ import annotations

from django.urls import path

from accounts import views

urlpatterns = [
    path("account/", views.account, name="account"),
    path("invitations/accept/", views.invitation_accept, name="invitation_accept"),
    path("invitations/<str:key>/", views.invitation_open, name="invitation_open"),
    path("w/<slug:slug>/members/invite/", views.invitation_create, name="invitation_create"),
    path(
        "w/<slug:slug>/members/invitations/<int:pk>/resend/",
        views.invitation_resend,
        name="invitation_resend",
    ),
    path(
        "w/<slug:slug>/members/invitations/<int:pk>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("w/<slug:slug>/members/two-factor/", views.workspace_two_factor, name="two_factor"),
    path("w/<slug:slug>/members/sso/", views.workspace_sso, name="sso_requirement"),
    path("w/<slug:slug>/leave/", views.workspace_leave, name="workspace_leave"),
]
