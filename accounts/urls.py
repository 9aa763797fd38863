from django.urls import path

from accounts import views
from accounts.access import requires

app_name = "accounts"
urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", requires(methods=["POST"])(views.LogoutView.as_view()), name="logout"),
]
